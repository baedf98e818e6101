"""otpr-configure-model: a model directory with acting settings changed, the weights the same."""

import json

import pytest

from model_fixtures import make_tiny_model
from otpr_ros.model.directory import load_model, sha256
from otpr_ros.tools.configure_model import main as configure


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("configure"))


def test_changed_setting_is_kept_with_the_same_weights(model_dir, tmp_path):
    output = tmp_path / "configured"
    assert configure(["--model", str(model_dir), "--output", str(output), "--set", "agent.execute_steps=2",
                      "--no-onnx"]) == 0
    model = load_model(output)                               # checksums and weights checked
    assert model.config.agent.execute_steps == 2
    assert load_model(model_dir).config.agent.execute_steps == 0
    assert sha256(output / "weights.pt") == sha256(model_dir / "weights.pt")
    assert (output / "normalizer.json").read_text() == (model_dir / "normalizer.json").read_text()
    card = (output / "MODEL_CARD.md").read_text()
    assert card.startswith((model_dir / "MODEL_CARD.md").read_text().rstrip("\n"))
    assert "- agent.execute_steps: 0 -> 2" in card and "otpr-configure-model --model" in card
    extra = json.loads((output / "model.json").read_text())["extra"]
    assert extra["configured"] == {"from": str(model_dir), "settings": ["agent.execute_steps=2"]}
    assert "device: cpu" in (model_dir / "config.yaml").read_text()        # the fixture's, kept as written
    assert (output / "config.yaml").read_text().count("device: cpu") == 1


@pytest.mark.parametrize("setting, named", [("agent.execute_steps=5", "execute_steps"),      # chunk is 4
                                            ("diffusion.hidden=[64]", "diffusion.hidden"),   # a network's shape
                                            ("agent.execute_steps=0", "change nothing")])
def test_refused_setting_writes_nothing(model_dir, tmp_path, capsys, setting, named):
    output = tmp_path / "configured"
    assert configure(["--model", str(model_dir), "--output", str(output), "--set", setting, "--no-onnx"]) == 2
    error = capsys.readouterr().err
    assert named in error and "nothing written" in error
    assert not output.exists()


def test_a_changed_source_is_refused(model_dir, tmp_path, capsys):
    import shutil
    source = tmp_path / "source"
    shutil.copytree(model_dir, source)
    (source / "config.yaml").write_text((source / "config.yaml").read_text().replace("execute_steps: 0",
                                                                                       "execute_steps: 2"))
    assert configure(["--model", str(source), "--output", str(tmp_path / "out"), "--set",
                      "agent.execute_steps=1"]) == 2
    assert "checksum" in capsys.readouterr().err and not (tmp_path / "out").exists()
