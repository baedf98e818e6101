"""Two backends for the same decision graph: torch (the live agent) and ONNX Runtime.

Both take normalised observations (B, obs_dim) and noise (S, B, L, D) as float32 numpy
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


class OnnxBackend:
    name = "onnx"

    def __init__(self, model, onnx_dir=None, providers=PREFERRED_PROVIDERS, threads: int | None = None):
        import onnxruntime as ort

        onnx_dir = Path(onnx_dir) if onnx_dir is not None else model.path / "onnx"
        try:
            manifest = json.loads((onnx_dir / "manifest.json").read_text())
        except FileNotFoundError:
            raise ValueError(f"{onnx_dir}: no ONNX export; run export-onnx --model {model.path}") from None
        if manifest["weights_sha256"] != model.weights_sha256:
            raise ValueError(f"{onnx_dir}: exported from other weights than {model.path}/weights.pt; "
                             f"run export-onnx --model {model.path} again")
        d = model.config.diffusion
        if (manifest["sampler"], manifest["ddim_steps"], manifest["eta"]) != (d.sampler, d.ddim_steps, d.eta):
            raise ValueError(f"{onnx_dir}: exported for sampler {manifest['sampler']}, the config says {d.sampler}")
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
        self.session = ort.InferenceSession(str(onnx_dir / "decision.onnx"), options, providers=wanted)
        self.provider = self.session.get_providers()[0]

    def __call__(self, obs: np.ndarray, noise: np.ndarray):
        return tuple(self.session.run(None, {"obs": obs, "noise": noise}))
