"""otpr-pretrain --init: more policy steps from a model directory, on real (small) HDF5 files.

The policy (weights and EMA weights), the normalisers, the observation keys and the configuration
are the model's; the new steps start where its policy stands (a tiny rate barely moves it, where
a fresh start would be far away); the card says where it started; a model of another task, a
missing directory and --init beside --config are refused by name."""

import pytest
import torch
from model_fixtures import episode, make_tiny_model

from otpr_ros.data.robomimic_hdf5 import write_dataset
from otpr_ros.model.directory import load_model
from otpr_ros.tools.pretrain import main as pretrain_main


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("base"), extra_args=("--set", "agent.execute_steps=2"))


@pytest.fixture(scope="module")
def other_demos(tmp_path_factory):
    """Demonstrations whose observations and actions span other ranges than the base model's."""
    path = tmp_path_factory.mktemp("other") / "demos.hdf5"
    episodes = [episode(12, s) for s in range(100, 106)]
    for e in episodes:
        e["actions"] = e["actions"] * 0.5
        for key in e["obs"]:
            e["obs"][key], e["next_obs"][key] = 3.0 * e["obs"][key], 3.0 * e["next_obs"][key]
    write_dataset(path, episodes, {"env_name": "Lift"}, valid_fraction=0.0)
    return path


def go_on(base, demos, output, *extra):
    return pretrain_main(["--task", "lift", "--dataset", str(demos), "--output", str(output), "--init", str(base),
                          "--critic-steps", "5", "--batch-size", "16", "--device", "cpu", "--no-onnx",
                          "--logdir", str(output.parent / "tb"), *extra])


def policy_tensors(model):
    return model.agent.policy.state_dict()


def test_no_new_steps_keep_the_policy_normalisers_and_config_of_the_model(base, other_demos, tmp_path):
    assert go_on(base, other_demos, tmp_path / "same", "--policy-steps", "0") == 0
    before, after = load_model(base), load_model(tmp_path / "same")
    start, now = policy_tensors(before), policy_tensors(after)
    assert start.keys() == now.keys()
    for name, tensor in start.items():                       # the net's and the EMA net's
        assert torch.equal(tensor, now[name]), name
    for kind in ("obs_normalizer", "action_normalizer"):     # the model's, not the new data's
        assert getattr(after, kind).to_dict() == getattr(before, kind).to_dict()
    assert after.config.agent.execute_steps == 2 and after.info.obs_keys == before.info.obs_keys
    card = (tmp_path / "same" / "MODEL_CARD.md").read_text()
    assert f"started from {base}" in card and "20 policy steps of its own" in card and "20 in all" in card
    own, started = card.split("## The model it started from")     # the model's card follows, one level down
    base_card = (base / "MODEL_CARD.md").read_text()
    assert "\n### Training\n" in started and "\n## Training\n" not in started and "\n## Training\n" in own
    command = next(line for line in base_card.splitlines() if line.startswith("otpr-pretrain"))
    assert command in started and f"--init {base}" in own


def test_new_steps_start_where_the_model_stands(base, other_demos, tmp_path):
    tiny_rate = ("--policy-steps", "10", "--set", "diffusion.pretrain_lr=1e-7")
    assert go_on(base, other_demos, tmp_path / "more", *tiny_rate) == 0
    fresh = tmp_path / "fresh"
    assert pretrain_main(["--task", "lift", "--dataset", str(other_demos), "--output", str(fresh),
                          "--config", str(base / "config.yaml"), "--critic-steps", "5", "--batch-size", "16",
                          "--device", "cpu", "--no-onnx", "--logdir", str(tmp_path / "tb"), *tiny_rate]) == 0
    start, more, new = (policy_tensors(load_model(p)) for p in (base, tmp_path / "more", fresh))
    moved = max((more[k] - start[k]).abs().max().item() for k in start)
    apart = max((new[k] - start[k]).abs().max().item() for k in start)
    assert 0 < moved < 1e-3 < apart
    assert "30 in all" in (tmp_path / "more" / "MODEL_CARD.md").read_text()
    assert go_on(tmp_path / "more", other_demos, tmp_path / "again", "--policy-steps", "5") == 0   # counts carry on
    assert "30 policy steps of its own" in (tmp_path / "again" / "MODEL_CARD.md").read_text()
    assert "35 in all" in (tmp_path / "again" / "MODEL_CARD.md").read_text()


def test_a_model_of_another_task_a_missing_one_and_init_with_config_are_refused(base, other_demos, tmp_path,
                                                                                 capsys):
    code = pretrain_main(["--task", "can", "--dataset", str(other_demos), "--output", str(tmp_path / "x"),
                          "--init", str(base)])
    assert code == 2 and "is a lift model, not can" in capsys.readouterr().err
    assert go_on(tmp_path / "nowhere", other_demos, tmp_path / "y") == 2
    err = capsys.readouterr().err
    assert "--init" in err and "not a model directory" in err
    with pytest.raises(SystemExit) as stop:
        go_on(base, other_demos, tmp_path / "z", "--config", str(base / "config.yaml"))
    assert stop.value.code == 2 and "leave out --config" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z"))
