import json

import numpy as np
import pytest

from model_fixtures import make_tiny_model
from otpr_ros.model.directory import load_model
from otpr_ros.model.onnx_export import export_onnx
from otpr_ros.model.policy import ChunkPolicy


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model_dir = make_tiny_model(tmp_path_factory.mktemp("onnx"))
    export_onnx(model_dir)
    return model_dir


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_exported_decision_equals_torch_for_the_same_inputs(exported, backend):
    model = load_model(exported, "cpu")
    torch_policy, graph_policy = ChunkPolicy(model, "torch"), ChunkPolicy(model, backend)
    assert graph_policy.backend.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider",
                                            "OpenVINO CPU")
    rng = np.random.default_rng(1)
    # batch and L are dynamic in the graph (OpenVINO compiles each new shape, in float32: a
    # bfloat16 compilation, its default on CPUs that have it, is off by ~6e-3 and fails here)
    # checked after all calls: a backend that reuses its buffers must not hand out views of them
    results = []
    for batch, candidates in ((1, 4), (5, 4), (3, 9), (1, 4), (1, 4)):
        torch_policy.num_candidates = graph_policy.num_candidates = candidates
        obs = rng.normal(size=(batch, 19)).astype(np.float32)
        noise = torch_policy.draw_noise(batch)
        results.append((torch_policy.backend(obs, noise), graph_policy.backend(obs, noise)))
    for expected, got in results:
        for name, a, b in zip(("candidates", "weights", "score"), expected, got):
            assert a.shape == b.shape, name
            np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4, err_msg=name)


def test_q_v_u_v_graphs_match_torch(exported):
    import onnxruntime as ort
    import torch

    agent = load_model(exported, "cpu").agent
    obs, actions = torch.randn(6, 19), torch.randn(6, 28).clamp(-1, 1)
    checks = {"q.onnx": ({"obs": obs, "actions": actions}, agent.critic.target_q(obs, actions)),
              "value.onnx": ({"obs": obs}, agent.critic.value(obs)),
              "potential_u.onnx": ({"obs": obs}, agent.potentials.u(obs)),
              "potential_v.onnx": ({"actions": actions}, agent.potentials.v(actions))}
    for name, (inputs, expected) in checks.items():
        session = ort.InferenceSession(str(exported / "onnx" / name), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {k: v.numpy() for k, v in inputs.items()})
        np.testing.assert_allclose(got, expected.detach().numpy(), atol=1e-4, err_msg=name)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_stale_export_is_refused(exported, tmp_path, backend):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "onnx" / "manifest.json").read_text())
    manifest["weights_sha256"] = "0" * 64
    (copy / "onnx" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="exported from other weights"):
        ChunkPolicy(load_model(copy, "cpu"), backend)


def test_an_export_for_other_acting_weights_is_refused(exported):
    """The graph computes the weights its configuration said when exported: acting by Q from a
    graph that computes H would silently act otherwise."""
    from otpr_ros.training.online_learning import apply_overrides
    model = load_model(exported, "cpu")
    apply_overrides(model, ["agent.acting_weights=q"])
    with pytest.raises(ValueError, match="acting weights compatibility, the config says q"):
        ChunkPolicy(model, "onnx")


def test_mish_closed_form_equals_mish_over_the_whole_float_range(tmp_path):
    import onnx
    import onnxruntime as ort
    import openvino
    import torch

    from otpr_ros.model.onnx_export import OPSET, closed_form_mish

    path = tmp_path / "mish.onnx"
    x = torch.cat([torch.linspace(-100, 100, 20001), torch.tensor([-1e30, -3e38, 1e30, 3e38, 0.0])])
    with closed_form_mish():
        torch.onnx.export(torch.nn.Mish(), (x,), str(path), input_names=["x"], opset_version=OPSET, dynamo=False)
    assert "Softplus" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    expected = torch.nn.functional.mish(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    # OpenVINO fuses the closed form into one JIT kernel with its own Exp and Div: the same range must hold there
    core = openvino.Core()
    fused = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for runtime, values in (("onnxruntime", got), ("openvino", fused({"x": x.numpy()})[0])):
        assert np.isfinite(values).all(), runtime
        np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6, err_msg=runtime)


def test_exported_decision_has_no_softplus(exported):
    import onnx

    ops = {n.op_type for n in onnx.load(str(exported / "onnx" / "decision.onnx")).graph.node}
    assert "Softplus" not in ops and "Exp" in ops
