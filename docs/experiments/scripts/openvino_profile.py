"""Where an OpenVINO (CPU) decision's time goes: the runtime's own per-node profile.

Compiles a model's ``decision.onnx`` as the ``openvino`` backend does (one state, the
model's L candidates, float32) with OpenVINO's performance counters on, runs decisions, and
prints for each kind of node it executes: how many, and their kernel time per decision
(median over decisions). Below the table: the kernels' sum and a decision's wall time; the
difference is the runtime's own dispatch and the Python call.

Usage: python docs/experiments/scripts/openvino_profile.py --model models/lift [--decisions 300]
"""

import argparse
import collections
import statistics
import time

import numpy as np
import openvino as ov

from otpr_ros.model.backends import OpenVinoBackend
from otpr_ros.model.directory import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()

    model = load_model(args.model, "cpu")
    backend = OpenVinoBackend(model, model.config.agent.num_candidates, profile=True)
    obs_shape, noise_shape = backend.policy_shape
    request, inputs, _ = backend.request(obs_shape, noise_shape)
    rng = np.random.default_rng(0)
    inputs["obs"][:] = rng.uniform(-1, 1, obs_shape)
    inputs["noise"][:] = rng.standard_normal(noise_shape)

    for _ in range(args.warmup):
        request.infer()
    per_kind, kernels, walls = collections.defaultdict(list), [], []
    for _ in range(args.decisions):
        start = time.perf_counter()
        request.infer()
        walls.append(time.perf_counter() - start)
        totals = collections.defaultdict(float)
        for node in request.profiling_info:
            totals[node.node_type] += node.real_time.total_seconds()
        for kind, seconds in totals.items():
            per_kind[kind].append(seconds)
        kernels.append(sum(totals.values()))
    counts = collections.Counter(node.node_type for node in request.profiling_info)   # the same every decision

    print(f"model {args.model}: L={noise_shape[2]}, one state, openvino {ov.__version__}, CPU, "
          f"{request.get_compiled_model().get_property('INFERENCE_NUM_THREADS')} threads; "
          f"{args.decisions} decisions after {args.warmup} warm-up\n")
    print(f"| {'node kind':<16} | nodes | kernel ms per decision (p50) |")
    print(f"|{'-' * 18}|-------|------------------------------|")
    for kind, seconds in sorted(per_kind.items(), key=lambda item: -statistics.median(item[1])):
        print(f"| {kind:<16} | {counts[kind]:5d} | {1e3 * statistics.median(seconds):28.3f} |")
    print(f"\nkernels in all: {1e3 * statistics.median(kernels):.2f} ms p50; a decision (request.infer): "
          f"{1e3 * statistics.median(walls):.2f} ms p50")


if __name__ == "__main__":
    main()
