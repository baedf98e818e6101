import json
import shutil

import numpy as np
import pytest

from model_fixtures import make_tiny_model
from otpr_ros.model.directory import ModelError, load_model, sha256
from otpr_ros.model.policy import ChunkPolicy


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("directory"))


def copy_of(model_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(model_dir, target)
    return target


def test_directory_is_self_describing(model_dir):
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["obs_keys"] == ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"]
    assert (manifest["obs_dim"], manifest["act_dim"], manifest["chunk"]) == (19, 7, 4)
    assert manifest["action_low"] == [-1.0] * 7 and manifest["extra"]["policy_steps"] == 20
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert "pretrain --task lift" in card and "20 policy" in card


def test_round_trip_gives_the_same_actions_for_the_same_noise(model_dir, tmp_path):
    first = ChunkPolicy(load_model(model_dir, "cpu"), "torch")
    obs = np.random.default_rng(0).normal(size=(3, 19))
    noise, uniform = first.draw_noise(3), np.full(3, 0.5)
    actions, index, _ = first.decide_batch(obs, noise, uniform)
    # save again from the loaded agent, load that copy: identical decisions
    from otpr_ros.model.directory import save_model
    model = first.model
    resaved = save_model(tmp_path / "resaved", model.agent, model.info, model.obs_normalizer,
                         model.action_normalizer, "card")
    again, again_index, _ = ChunkPolicy(load_model(resaved, "cpu"), "torch").decide_batch(obs, noise, uniform)
    assert np.array_equal(actions, again) and np.array_equal(index, again_index)
    assert actions.shape == (3, 4, 7) and np.all(np.abs(actions) <= 1.0)


def test_missing_file_is_refused(model_dir, tmp_path):
    broken = copy_of(model_dir, tmp_path)
    (broken / "normalizer.json").unlink()
    with pytest.raises(ModelError, match="missing normalizer.json"):
        load_model(broken)


def test_changed_file_is_refused(model_dir, tmp_path):
    broken = copy_of(model_dir, tmp_path)
    with open(broken / "weights.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="weights.pt: checksum does not match"):
        load_model(broken)


def test_weights_that_do_not_fit_the_config_are_refused(model_dir, tmp_path):
    broken = copy_of(model_dir, tmp_path)
    config = (broken / "config.yaml").read_text().replace("- 32\n    - 32\n    time_dim", "- 48\n    - 48\n    time_dim")
    assert config != (broken / "config.yaml").read_text()
    (broken / "config.yaml").write_text(config)
    manifest = json.loads((broken / "model.json").read_text())
    manifest["files"]["config.yaml"] = sha256(broken / "config.yaml")      # a consistent but mismatched model
    (broken / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="weights.pt: does not fit config.yaml"):
        load_model(broken)


def test_not_a_model_directory(tmp_path):
    from otpr_ros.model.directory import read_config
    with pytest.raises(ModelError, match="not a model directory"):
        load_model(tmp_path / "nothing")
    with pytest.raises(ModelError, match="nothing: not a model directory"):
        read_config(tmp_path / "nothing")                # what a bridge reads its gamma with
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="missing model.json"):
        load_model(tmp_path / "empty")


def test_a_config_the_agent_would_refuse_is_refused_where_it_is_read(model_dir, tmp_path):
    """The bridge reads execute_steps from config.yaml without building an agent: a chunk
    cannot be executed beyond its end, so read_config applies the agent's rules by name."""
    from otpr_ros.model.directory import read_config
    broken = copy_of(model_dir, tmp_path)
    config = (broken / "config.yaml").read_text()
    assert "execute_steps: 0" in config
    (broken / "config.yaml").write_text(config.replace("execute_steps: 0", "execute_steps: 9"))
    with pytest.raises(ModelError, match=r"copy/config.yaml: agent.execute_steps: expected 0 \(the whole chunk\) "
                                         r"to chunk = 4, got 9"):
        read_config(broken)
