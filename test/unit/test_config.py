from pathlib import Path

import pytest
import yaml

from otpr_ros.core.config import OTPRConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("task, obs_dim", [("lift", 19), ("can", 23), ("square", 23)])
def test_task_yaml_loads(task, obs_dim):
    config = OTPRConfig.from_yaml(CONFIG_DIR / f"{task}.yaml")
    assert config.obs_dim == obs_dim and config.action_dim == 28
    assert config.diffusion.hidden == (512, 512, 512) and config.critic.gamma == 0.999


def test_unknown_keys_are_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"otpr": {"obs_dim": 3, "transport": {"lamda": 0.1}}}))
    with pytest.raises(ValueError, match=r"otpr.transport: unknown keys \['lamda'\]"):
        OTPRConfig.from_yaml(path)
    with pytest.raises(ValueError, match="no 'otpr_v2' section"):
        OTPRConfig.from_yaml(CONFIG_DIR / "lift.yaml", section="otpr_v2")


def test_values_of_the_wrong_type_are_errors():
    # YAML 1.1 reads 3e-6 as a string: a number written so is still the float it means
    assert OTPRConfig.from_dict({"obs_dim": 3, "diffusion": {"finetune_lr": "3e-6"}}).diffusion.finetune_lr == 3e-6
    assert OTPRConfig.from_dict({"obs_dim": 3, "transport": {"beta": 1}}).transport.beta == 1.0
    for section, key, value in [("critic", "batch_size", 1.5), ("transport", "masked", "no"),
                                ("transport", "lr", "fast"), ("agent", "num_candidates", True)]:
        with pytest.raises(ValueError, match=rf"otpr.{section}.{key}: expected"):
            OTPRConfig.from_dict({"obs_dim": 3, section: {key: value}})


def test_round_trip_through_dict():
    config = OTPRConfig(obs_dim=5, chunk=2)
    assert OTPRConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("task", ["lift", "can", "square"])
def test_node_sections_reach_nodes_in_any_namespace(task):
    """A plain ``learner:`` key only reaches a learner in the root namespace; launches put
    every node under a namespace, where such a section would be silently ignored."""
    sections = yaml.safe_load((CONFIG_DIR / f"{task}.yaml").read_text())
    assert set(sections) == {"/**", "/**/policy_server", "/**/sim_bridge", "/**/learner"}
    assert all("ros__parameters" in body for body in sections.values())
