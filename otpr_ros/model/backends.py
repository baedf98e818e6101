"""Three backends for the same decision graph: torch (the live agent), and the exported
graph on ONNX Runtime or on OpenVINO (the fastest on a CPU, see docs/performance.md's latency table).

All take normalised observations (B, obs_dim) and noise (S, B, L, D) as float32 numpy
arrays and return (candidates, weights, score) as numpy arrays.
"""

import json
from pathlib import Path

import numpy as np
import torch

from otpr_ros.model.decision import DecisionGraph

# best first; ONNX Runtime keeps those it can actually load
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class TorchBackend:
    name = "torch"

    def __init__(self, model, compiled: bool = False):
        self.model, self.device = model, model.agent.device
        graph = DecisionGraph(model.agent).eval()
        self.graph = torch.compile(graph, dynamic=False) if compiled else graph
        self.provider = str(self.device)

    def __call__(self, obs: np.ndarray, noise: np.ndarray):
        with torch.inference_mode():
            outputs = self.graph(torch.as_tensor(obs, device=self.device), torch.as_tensor(noise, device=self.device))
        return tuple(t.float().cpu().numpy() for t in outputs)


def exported_decision(model, onnx_dir=None) -> Path:
    """The model's exported decision graph, checked against the model it must match."""
    onnx_dir = Path(onnx_dir) if onnx_dir is not None else model.path / "onnx"
    try:
        manifest = json.loads((onnx_dir / "manifest.json").read_text())
    except FileNotFoundError:
        raise ValueError(f"{onnx_dir}: no ONNX export; run otpr-export-onnx --model {model.path}") from None
    if manifest["weights_sha256"] != model.weights_sha256:
        raise ValueError(f"{onnx_dir}: exported from other weights than {model.path}/weights.pt; "
                         f"run otpr-export-onnx --model {model.path} again")
    d = model.config.diffusion
    if (manifest["sampler"], manifest["ddim_steps"], manifest["eta"]) != (d.sampler, d.ddim_steps, d.eta):
        raise ValueError(f"{onnx_dir}: exported for sampler {manifest['sampler']}, the config says {d.sampler}")
    acting = model.config.agent.acting_weights
    if manifest.get("acting_weights", "compatibility") != acting:
        raise ValueError(f"{onnx_dir}: exported with acting weights {manifest.get('acting_weights', 'compatibility')}, "
                         f"the config says {acting}; run otpr-export-onnx --model {model.path} again")
    return onnx_dir / "decision.onnx"


class OnnxBackend:
    name = "onnx"

    def __init__(self, model, onnx_dir=None, providers=PREFERRED_PROVIDERS, threads: int | None = None):
        import onnxruntime as ort

        path = exported_decision(model, onnx_dir)
        options = ort.SessionOptions()
        options.log_severity_level = 3          # errors only; the provider it got is reported by the caller
        if threads:
            options.intra_op_num_threads = threads
        available = set(ort.get_available_providers())
        # GPU providers are only asked for where a GPU is visible: onnxruntime-gpu lists them
        # everywhere, and a failed load costs a second and a screen of errors
        gpu = torch.cuda.is_available()
        wanted = [p for p in providers if p in available and (gpu or p == "CPUExecutionProvider")]
        ort.set_default_logger_severity(3)
        self.session = ort.InferenceSession(str(path), options, providers=wanted)
        self.provider = self.session.get_providers()[0]

    def __call__(self, obs: np.ndarray, noise: np.ndarray):
        return tuple(self.session.run(None, {"obs": obs, "noise": noise}))


class OpenVinoBackend:
    """The exported graph on OpenVINO's CPU runtime, which fuses each chain of elementwise
    nodes (Mish's closed form, the sampler's update) into one JIT kernel: a Lift decision runs
    ~210 kernels where ONNX Runtime runs ~1 000 nodes. It is compiled for each input shape it
    meets (with the batch and L left dynamic it runs at half the speed), the policy's own shape
    (one state, L candidates) at construction, so the first decision does not wait ~1 s for
    it; and in float32, which OpenVINO would otherwise lower to bfloat16 on CPUs that have it."""
    name = "openvino"

    def __init__(self, model, num_candidates: int, onnx_dir=None, threads: int | None = None, profile: bool = False):
        import openvino as ov

        self.core = ov.Core()
        self.graph = self.core.read_model(str(exported_decision(model, onnx_dir)))
        self.options = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.options["INFERENCE_NUM_THREADS"] = threads
        if profile:
            self.options["PERF_COUNT"] = True    # per-node kernel times (docs/experiments/scripts/openvino_profile.py)
        self.requests = {}
        # the graph's fixed sizes (steps, obs and action widths) with one state and L candidates
        obs, noise = self.graph.input("obs").get_partial_shape(), self.graph.input("noise").get_partial_shape()
        self.policy_shape = ((1, obs[1].get_length()),
                             (noise[0].get_length(), 1, num_candidates, noise[3].get_length()))
        self.request(*self.policy_shape)
        self.provider = "OpenVINO CPU"

    def request(self, obs_shape, noise_shape):
        """The compiled graph's inference request for these input shapes (compiled on first use),
        with its input buffers and its outputs' views: the inputs are arrays the backend owns,
        bound to the request once, so a decision copies into them and runs the request with no
        arguments (passing a dict of arrays costs ~0.1 ms a call, 5 % of a Lift decision)."""
        key = (tuple(obs_shape), tuple(noise_shape))
        if key not in self.requests:
            import openvino as ov

            graph = self.graph.clone()
            graph.reshape({"obs": list(obs_shape), "noise": list(noise_shape)})
            request = self.core.compile_model(graph, "CPU", self.options).create_infer_request()
            inputs = {"obs": np.zeros(obs_shape, np.float32), "noise": np.zeros(noise_shape, np.float32)}
            for name, array in inputs.items():
                request.set_tensor(name, ov.Tensor(array, shared_memory=True))
            outputs = tuple(request.get_tensor(name).data for name in ("candidates", "weights", "score"))
            self.requests[key] = (request, inputs, outputs)
        return self.requests[key]

    def __call__(self, obs: np.ndarray, noise: np.ndarray):
        request, inputs, outputs = self.request(obs.shape, noise.shape)
        np.copyto(inputs["obs"], obs)
        np.copyto(inputs["noise"], noise)
        request.infer()
        # copies: the request's output buffers are overwritten by its next decision
        return tuple(output.copy() for output in outputs)
