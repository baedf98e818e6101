from pathlib import Path

import pytest
import yaml

from otpr_ros.core.config import OTPRConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("task, obs_dim, settings", [("lift", 19, []), ("can", 23, []),
                                                      ("square", 23, []), ("calvin_multi", 46, [])])
def test_the_pretraining_config_is_each_shipped_model_s(task, obs_dim, settings):
    """config/otpr.yaml (obs_dim from the task) with the --set of the model's command in the
    Makefile (none now: Lift's 1e-4 went with its re-make on 2026-12-02) is what every
    shipped model was trained with."""
    from otpr_ros.core.config import with_settings
    from otpr_ros.model.directory import read_config
    from otpr_ros.package_files import shipped_model
    assert all(f"--set {item}" in (shipped_model(task) / "MODEL_CARD.md").read_text() for item in settings)
    config = with_settings(OTPRConfig.from_yaml(CONFIG_DIR / "otpr.yaml", defaults={"obs_dim": obs_dim}), settings)
    assert config.obs_dim == obs_dim and config.action_dim == 28 and config.critic.gamma == 0.999
    shipped = read_config(shipped_model(task))
    config.device, config.seed = shipped.device, shipped.seed        # otpr-pretrain's --device, --seed
    assert config == shipped


@pytest.mark.parametrize("task, execute_steps", [("kitchen_complete", 4), ("kitchen_partial", 4),
                                                 ("kitchen_mixed", 4)])
def test_the_kitchen_pretraining_config_is_each_shipped_kitchen_model_s(task, execute_steps):
    """config/otpr_kitchen.yaml is what each Kitchen model was trained with; each then executes 4
    of each chunk of 8 (otpr-configure-model, in the Makefile and their cards)."""
    from otpr_ros.model.directory import read_config
    from otpr_ros.package_files import shipped_model
    config = OTPRConfig.from_yaml(CONFIG_DIR / "otpr_kitchen.yaml", defaults={"obs_dim": 59})
    shipped = read_config(shipped_model(task))
    assert shipped.agent.execute_steps == execute_steps
    if execute_steps:
        assert "--set agent.execute_steps=4" in (shipped_model(task) / "MODEL_CARD.md").read_text()
    config.device, config.seed, config.agent.execute_steps = shipped.device, shipped.seed, execute_steps
    assert config == shipped


def test_unknown_keys_are_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"otpr": {"obs_dim": 3, "transport": {"lamda": 0.1}}}))
    with pytest.raises(ValueError, match=r"otpr.transport: unknown keys \['lamda'\]"):
        OTPRConfig.from_yaml(path)
    with pytest.raises(ValueError, match="no 'otpr_v2' section"):
        OTPRConfig.from_yaml(CONFIG_DIR / "otpr.yaml", section="otpr_v2")


def test_values_of_the_wrong_type_are_errors():
    # YAML 1.1 reads 3e-6 as a string: a number written so is still the float it means
    assert OTPRConfig.from_dict({"obs_dim": 3, "diffusion": {"finetune_lr": "3e-6"}}).diffusion.finetune_lr == 3e-6
    assert OTPRConfig.from_dict({"obs_dim": 3, "transport": {"beta": 1}}).transport.beta == 1.0
    for section, key, value in [("critic", "batch_size", 1.5), ("transport", "masked", "no"),
                                ("transport", "lr", "fast"), ("agent", "num_candidates", True)]:
        with pytest.raises(ValueError, match=rf"otpr.{section}.{key}: expected"):
            OTPRConfig.from_dict({"obs_dim": 3, section: {key: value}})


def test_settings_change_one_key_and_refuse_what_they_do_not_know():
    from otpr_ros.core.config import with_settings
    base = OTPRConfig(obs_dim=5)
    changed = with_settings(base, ["diffusion.pretrain_lr=1e-4", "chunk=8", "critic.hidden=[64, 64]"])
    assert (changed.diffusion.pretrain_lr, changed.chunk, changed.critic.hidden) == (1e-4, 8, (64, 64))
    assert base.diffusion.pretrain_lr == 1e-3 and changed.diffusion.ema_decay == base.diffusion.ema_decay
    for bad in ["diffusion.pretrain_rate=1e-3", "diffusion.pretrain_lr", "policy.lr=1"]:
        with pytest.raises(ValueError, match="--set .*expected section.key=value"):
            with_settings(base, [bad], where="--set")
    with pytest.raises(ValueError, match="expected float"):
        with_settings(base, ["diffusion.pretrain_lr=fast"])
    # a fine-tuning override may change only what leaves the networks alone
    with pytest.raises(ValueError, match="override 'critic.hidden=.*agent.num_candidates"):
        with_settings(base, ["critic.hidden=[64]"], {"agent": ("num_candidates",)}, "override")


def test_pretrain_keeps_a_set_value_and_refuses_an_unknown_one(tmp_path, capsys):
    from model_fixtures import make_tiny_model

    from otpr_ros.model.directory import read_config
    from otpr_ros.tools.pretrain import main as pretrain_main
    model = make_tiny_model(tmp_path, extra_args=["--set", "diffusion.pretrain_lr=5e-4"])
    assert read_config(model).diffusion.pretrain_lr == 5e-4
    assert "--set diffusion.pretrain_lr=5e-4" in (model / "MODEL_CARD.md").read_text()    # its command
    assert pretrain_main(["--task", "lift", "--dataset", str(tmp_path / "demos.hdf5"), "--output",
                          str(tmp_path / "refused"), "--set", "diffusion.learning_rate=1e-3"]) == 2
    assert "diffusion.learning_rate" in capsys.readouterr().err and not (tmp_path / "refused").exists()


def test_round_trip_through_dict():
    config = OTPRConfig(obs_dim=5, chunk=2)
    assert OTPRConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")
                                         if p.stem != "nodes" and not p.stem.startswith("otpr")))
def test_node_sections_reach_nodes_in_any_namespace(name):
    """A plain ``learner:`` key only reaches a learner in the root namespace; launches put
    every node under a namespace, where such a section would be silently ignored. No node
    file holds algorithm settings: nodes read them from the model (no second copy)."""
    shared = yaml.safe_load((CONFIG_DIR / "nodes.yaml").read_text())
    nodes = {f"/**/{node}" for node in ("policy_server", "sim_bridge", "learner", "transition_recorder",
                                        "sim_operator")}
    assert set(shared) == nodes
    own = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    assert set(own) <= {"/**", *nodes}
    for body in (*shared.values(), *own.values()):
        assert "otpr" not in body["ros__parameters"]


def test_a_task_file_overrides_the_shared_node_file():
    from otpr_ros.package_files import node_parameters
    lift, can = node_parameters("lift", "learner"), node_parameters("can", "learner")
    assert (lift["task"], lift["output_dir"], lift["updates_per_transition"]) == ("lift", "runs/finetune_lift", 0.5)
    assert (can["task"], can["updates_per_transition"]) == ("can", 0.25)
    assert "transport.masked=false" in can["overrides"] and "transport.masked=false" not in lift["overrides"]
    assert node_parameters("square", "sim_bridge")["task"] == "square"


def test_a_task_family_file_comes_between_the_shared_and_the_task_file():
    """What otpr-launch and the ROS launch files both give the nodes: Kitchen's variants share
    config/kitchen.yaml (the recipe) and add their own file; every CALVIN task reads
    config/calvin.yaml alone (no config/calvin_<task>.yaml: a launch file naming one would fail)."""
    from otpr_ros.package_files import config_names, node_parameters
    assert config_names("kitchen_mixed", CONFIG_DIR) == ["nodes.yaml", "kitchen.yaml", "kitchen_mixed.yaml"]
    assert config_names("calvin_open_drawer", CONFIG_DIR) == ["nodes.yaml", "calvin.yaml"]
    assert config_names("can", CONFIG_DIR) == ["nodes.yaml", "can.yaml"] and config_names(None, CONFIG_DIR) == ["nodes.yaml"]
    with pytest.raises(FileNotFoundError, match="no config for task 'robocasa_sink'"):
        config_names("robocasa_sink", CONFIG_DIR)
    for variant in ("complete", "partial", "mixed"):
        learner = node_parameters(f"kitchen_{variant}", "learner")
        assert (learner["task"], learner["output_dir"]) == (f"kitchen_{variant}", f"runs/finetune_kitchen_{variant}")
        assert learner["updates_per_transition"] == 1.0 and "agent.advantage_source=return" in learner["overrides"]
    assert node_parameters("kitchen_partial", "policy_server")["observation_source"] == "observation"


def test_the_benchmarks_cpu_settings_are_the_shared_learner_overrides():
    from otpr_ros.package_files import node_parameters
    from otpr_ros.training.ablation_variants import CPU_SETTINGS
    shared = node_parameters(None, "learner")
    assert "task" not in shared and CPU_SETTINGS == [o for o in shared["overrides"] if o]
    assert "agent.actor_batch=256" in CPU_SETTINGS and "transport.masked=false" not in CPU_SETTINGS


def test_a_task_without_a_shipped_model_asks_for_a_model_directory():
    from otpr_ros.package_files import shipped_model
    assert (shipped_model("lift") / "weights.pt").is_file()
    with pytest.raises(FileNotFoundError, match=r"no shipped model for task 'calvin' \(shipped: calvin_multi, "
                                                r"can, kitchen_complete, kitchen_mixed, kitchen_partial, lift, "
                                                r"square\): give a model directory"):
        shipped_model("calvin")
