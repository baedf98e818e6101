"""ONNX graphs of a model: the whole decision, and Q, V, u, v on their own.

    <model>/onnx/decision.onnx   obs (B, obs_dim), noise (S, B, L, D) -> candidates, weights, score
    <model>/onnx/q.onnx          obs (B, obs_dim), actions (B, D) -> target Q (min of the twins)
    <model>/onnx/value.onnx      obs -> V
    <model>/onnx/potential_u.onnx, potential_v.onnx
    <model>/onnx/manifest.json   which weights (sha256) and which sampler the graphs were made from

Inputs are normalised; batch, candidates are dynamic axes. The legacy TorchScript-based
exporter is used (``dynamo=False``): the dynamo exporter needs onnxscript, and the traced
graph of the unrolled denoising loop is what we want.

Mish is written in the graphs in closed form (``mish_closed_form``): ONNX Runtime's CPU
Softplus kernel is scalar and took about 40 % of a decision's kernel time, while Exp, Mul
and Div are vectorised; the closed form halves the decision's time (docs/performance.md, decision
latency) and equals ``x * tanh(softplus(x))`` to float rounding.
"""

import json
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from otpr_ros.model.decision import DecisionGraph
from otpr_ros.model.directory import load_model

OPSET = 17
MISH_CLIP = 20.0          # e^x beyond it: n / (n + 2) is 1 in float32, and e^(2x) would overflow


def mish_closed_form(g, x):
    """ONNX symbolic of ``aten::mish``: ``x * n / (n + 2)`` with ``n = e^x (e^x + 2)``, since
    ``tanh(log(1 + e^x)) = ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1)``."""
    exp = g.op("Exp", g.op("Min", x, g.op("Constant", value_t=torch.tensor(MISH_CLIP))))
    two = g.op("Constant", value_t=torch.tensor(2.0))
    n = g.op("Mul", exp, g.op("Add", exp, two))
    return g.op("Mul", x, g.op("Div", n, g.op("Add", n, two)))


@contextmanager
def closed_form_mish(symbolic=mish_closed_form):
    """Exports inside write Mish as ``symbolic`` (``mish_closed_form`` unless a benchmark asks
    for another); other exports keep torch's own."""
    torch.onnx.register_custom_op_symbolic("aten::mish", symbolic, OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::mish", OPSET)


class _Method(nn.Module):
    """One method of a module as the forward of a graph (the owner is registered, so its
    weights are the graph's parameters)."""

    def __init__(self, owner: nn.Module, method: str):
        super().__init__()
        self.owner, self.method = owner, method

    def forward(self, *args):
        return getattr(self.owner, self.method)(*args)


def export_onnx(model_dir, out_dir=None, num_candidates: int | None = None, mish_symbolic=mish_closed_form) -> Path:
    """Write the graphs of the model in ``model_dir`` (loaded on the CPU) under ``out_dir``;
    ``mish_symbolic`` is how Mish is written (docs/experiments/scripts/onnx_anatomy.py tries another)."""
    model = load_model(model_dir, device="cpu")
    agent, config = model.agent, model.config
    out = Path(out_dir) if out_dir is not None else model.path / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    candidates = num_candidates or config.agent.num_candidates
    d = config.diffusion
    obs = torch.zeros(2, config.obs_dim)
    noise = torch.zeros(agent.policy.noise_shape(2, candidates, d.sampler, d.ddim_steps))
    actions = torch.zeros(2, config.action_dim)
    graphs = {
        "decision.onnx": (DecisionGraph(agent), (obs, noise), ["obs", "noise"], ["candidates", "weights", "score"],
                          {"obs": {0: "batch"}, "noise": {1: "batch", 2: "candidates"},
                           "candidates": {0: "batch", 1: "candidates"}, "weights": {0: "batch", 1: "candidates"},
                           "score": {0: "batch", 1: "candidates"}}),
        "q.onnx": (_Method(agent.critic, "target_q"), (obs, actions), ["obs", "actions"], ["q"],
                   {"obs": {0: "batch"}, "actions": {0: "batch"}, "q": {0: "batch"}}),
        "value.onnx": (_Method(agent.critic, "value"), (obs,), ["obs"], ["value"], {"obs": {0: "batch"}, "value": {0: "batch"}}),
        "potential_u.onnx": (_Method(agent.potentials, "u"), (obs,), ["obs"], ["u"], {"obs": {0: "batch"}, "u": {0: "batch"}}),
        "potential_v.onnx": (_Method(agent.potentials, "v"), (actions,), ["actions"], ["v"],
                             {"actions": {0: "batch"}, "v": {0: "batch"}}),
    }
    with closed_form_mish(mish_symbolic), torch.no_grad():
        for name, (module, inputs, input_names, output_names, axes) in graphs.items():
            torch.onnx.export(module.eval(), inputs, str(out / name), input_names=input_names,
                              output_names=output_names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    manifest = {"weights_sha256": model.weights_sha256, "sampler": d.sampler, "ddim_steps": d.ddim_steps,
                "eta": d.eta, "sampling_steps": int(noise.shape[0]), "num_candidates": candidates,
                "potentials_ready": agent.potentials_ready,
                "acting_weights": agent.config.agent.acting_weights, "opset": OPSET, "graphs": sorted(graphs)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out
