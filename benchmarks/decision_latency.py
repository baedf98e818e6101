"""Decision latency of the OTPR policy on this machine, next to its FLOP floor.

One decision = L candidate chunks denoised over K steps for one state, then H for each
candidate (critic, potentials, keypoint cost) and the compatibility resampling: exactly
``OTPRAgent.act`` with trained potentials, through torch (eager, optimised, compiled) and
through ONNX Runtime and OpenVINO (the exported decision graph of the same agent). Default
shape: L=8, K=20, chunk 4x7, obs 23, hidden 512x3, 64 keypoints.

The floor is stated two ways, both measured in the same run:
- peak: the decision's matmul FLOPs at this machine's large-GEMM throughput (1024^3,
  before and after the paths, the higher kept);
- at shape: the time of the decision's own GEMMs alone, each timed at its real shape
  (M = L rows) with torch's (MKL) and with ONNX Runtime's kernel (MLAS, which OpenVINO's
  CPU runtime also calls for these layers), the faster counted. Small-M GEMMs stream their
  weights from cache and run far below peak, so this is the floor any implementation using
  these kernels can reach. It is timed in every round of the paths' interleaved timing.

Each path's ratio to the at-shape floor is paired by round: its p50 in a round over the floor
timed in the same round (a neighbour's busy spell on a shared machine slows both), the median
over rounds. The table also gives the p50 over all rounds against the quietest round's floor,
the stricter reading (busy rounds count against the path, not against the floor).

Usage: python benchmarks/decision_latency.py [--decisions 300] [--threads N] [--json out.json]
"""

import argparse
import json
import platform
import statistics
import time

import torch

from otpr_ros.core.agent import OTPRAgent
from otpr_ros.core.config import AgentConfig, OTPRConfig, TransportConfig
from otpr_ros.model.policy import ChunkPolicy


def percentile_ms(times, q):
    ordered = sorted(times)
    return 1e3 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def time_calls(fn, count, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def linear_layers(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def decision_gemms(agent):
    """(rows, in, out, calls) of every matmul in one decision for one state."""
    config, policy = agent.config, agent.policy.ema_net
    L, steps = config.agent.num_candidates, len(agent.policy.sampling_steps(config.diffusion.sampler,
                                                                           config.diffusion.ddim_steps))
    first = policy.input_layer
    gemms = [(1, config.obs_dim, first.out_features, 1),                     # observation term, once
             (steps, policy.time_dim, first.out_features, 1),                 # time terms, once
             (L, config.action_dim, first.out_features, steps)]               # action term, every step
    gemms += [(L, lin.in_features, lin.out_features, steps) for lin in linear_layers(policy.blocks)]
    gemms.append((L, policy.output_layer.in_features, policy.output_layer.out_features, steps))
    for net in (agent.critic.q1_target, agent.critic.q2_target, agent.potentials.v_net):
        gemms += [(L, lin.in_features, lin.out_features, 1) for lin in linear_layers(net)]
    gemms += [(1, lin.in_features, lin.out_features, 1) for lin in linear_layers(agent.potentials.u_net)]
    k = agent.relation_cost.obs.shape[0]
    gemms += [(1, config.obs_dim, k, 1), (L, config.action_dim, k, 1)]      # keypoint distances
    return gemms


def peak_gflops(size=1024, reps=20):
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = min(time_calls(lambda: a @ b, reps, 3))
    return 2 * size ** 3 / seconds / 1e9


def onnx_session(rows, n_in, n_out=None):
    """ONNX Runtime session for one x @ W with W a constant (its GEMM kernel at this shape), or
    for Identity(x) when n_out is None (the cost of a run call itself, to subtract)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, n_in])
    if n_out is None:
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "run", [x_info],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n_in])])
    else:
        weight = numpy_helper.from_array(np.random.randn(n_in, n_out).astype(np.float32), "w")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm", [x_info],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n_out])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.random.randn(rows, n_in).astype(np.float32)
    return lambda: session.run(None, {"x": x})


class GemmFloor:
    """The decision's GEMMs at their shapes: seconds with torch's (MKL) kernels, with ONNX
    Runtime's, and with the faster of the two for each shape (the floor). ONNX Runtime's time is
    a run of a one-MatMul graph less a run of a one-Identity graph of the same input, so the call
    itself is not counted."""

    def __init__(self, gemms):
        self.kernels = []
        for rows, n_in, n_out, calls in gemms:
            x, w = torch.randn(rows, n_in), torch.randn(n_out, n_in)
            self.kernels.append((calls, lambda x=x, w=w: torch.nn.functional.linear(x, w),
                                 onnx_session(rows, n_in, n_out), onnx_session(rows, n_in)))

    def seconds(self, reps):
        totals = {"torch": 0.0, "onnxruntime": 0.0, "best": 0.0}
        median = lambda fn: percentile_ms(time_calls(fn, reps, 20), 50) / 1e3  # noqa: E731
        with torch.inference_mode():
            for calls, torch_gemm, onnx_gemm, onnx_call in self.kernels:
                kernels = {"torch": median(torch_gemm), "onnxruntime": max(0.0, median(onnx_gemm) - median(onnx_call))}
                kernels["best"] = min(kernels.values())
                for name, seconds in kernels.items():
                    totals[name] += calls * seconds
        return totals


def build_agent(args):
    config = OTPRConfig(obs_dim=args.obs_dim, act_dim=args.act_dim, chunk=args.chunk, device="cpu",
                        transport=TransportConfig(warmup_steps=0, num_keypoints=args.keypoints),
                        agent=AgentConfig(num_candidates=args.candidates))
    config.diffusion.num_steps = config.diffusion.ddim_steps = args.steps
    agent = OTPRAgent(config)
    agent.set_keypoints(torch.randn(args.keypoints, args.obs_dim),
                        torch.rand(args.keypoints, config.action_dim) * 2 - 1)
    return agent


def export_model(agent):
    """Save the agent as a model directory (identity normalisation) with its ONNX export."""
    import tempfile
    from pathlib import Path

    from otpr_ros.core.normalizer import MinMaxNormalizer
    from otpr_ros.model.directory import ModelInfo, save_model
    from otpr_ros.model.onnx_export import export_onnx

    config = agent.config
    directory = Path(tempfile.mkdtemp(prefix="otpr_bench_")) / "model"
    info = ModelInfo("benchmark", ["obs"], config.obs_dim, config.act_dim, config.chunk, [-1.0] * config.act_dim,
                     [1.0] * config.act_dim, 20.0)
    identity = (MinMaxNormalizer([-1.0] * config.obs_dim, [1.0] * config.obs_dim),
                MinMaxNormalizer([-1.0] * config.act_dim, [1.0] * config.act_dim))
    save_model(directory, agent, info, *identity, "benchmark model")
    export_onnx(directory)
    return directory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--obs-dim", type=int, default=23)
    parser.add_argument("--act-dim", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=4)
    parser.add_argument("--keypoints", type=int, default=64)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.decisions < 200:
        parser.error("--decisions: at least 200 for a p99")
    if args.threads:
        torch.set_num_threads(args.threads)

    agent = build_agent(args)
    obs = torch.rand(1, args.obs_dim) * 2 - 1
    gemms = decision_gemms(agent)
    flops = sum(2 * rows * n_in * n_out * calls for rows, n_in, n_out, calls in gemms)
    peak = peak_gflops()
    floor = GemmFloor(gemms)

    # eager: full network every step, autograd on; optimised: inference mode, observation and
    # time parts of the first layer once per decision, schedule folded into constants;
    # compiled: the optimised sampler through torch.compile (diffusion.compile in the YAML).
    def torch_path(fast, compiled):
        def decide():
            agent.config.diffusion.compile = compiled
            return agent.act(obs, mode="sample", fast=fast)
        return decide

    paths = {"torch eager": torch_path(False, False), "torch optimised": torch_path(True, False),
             "torch compiled": torch_path(True, True)}
    start = time.perf_counter()
    paths["torch compiled"]()
    print(f"(torch.compile took {time.perf_counter() - start:.0f} s, once)")
    # the exported decision graph of the same agent on ONNX Runtime (CPU provider here) and on
    # OpenVINO, noise drawn with numpy, the candidate picked from H outside the graph (as the
    # policy server does)
    directory, obs_np = export_model(agent), obs.numpy()
    for backend, label in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        policy = ChunkPolicy(directory, backend, selection="sample")
        paths[f"{label} ({policy.backend.provider.replace('ExecutionProvider', '')})"] = \
            lambda policy=policy: policy.decide_batch(obs_np)

    # interleaved in rounds with the at-shape floor, so a neighbour's burst on a shared machine
    # slows every path and the floor alike; each path's round starts with untimed decisions, so
    # the previous path's idle spinning threads (every runtime has its own pool) have gone quiet
    times, round_p50, floors = {name: [] for name in paths}, {name: [] for name in paths}, []
    rounds = max(1, args.decisions // 50)
    for decide in paths.values():
        time_calls(decide, 0, args.warmup)
    for r in range(rounds):
        count = args.decisions // rounds + (r < args.decisions % rounds)
        for name, decide in paths.items():
            round_times = time_calls(decide, count, 10)
            times[name] += round_times
            round_p50[name].append(percentile_ms(round_times, 50) / 1e3)
        floors.append(floor.seconds(reps=400))
    rows = [{"path": name, "p50_ms": percentile_ms(t, 50), "p99_ms": percentile_ms(t, 99)} for name, t in times.items()]
    # the quietest round's floor for the strict reading: a busy spell inflates the GEMMs' times
    # too, and a higher floor would flatter the ratio
    at_shape = {name: min(f[name] for f in floors) for name in floors[0]}
    floor_shape = at_shape["best"]

    # peak measured again at the end and the higher kept: a neighbour's burst during one
    # measurement would otherwise lower the peak (and flatter every ratio)
    peak = max(peak, peak_gflops())
    floor_peak = flops / (peak * 1e9)
    for row in rows:
        row["x_floor_peak"] = row["p50_ms"] / (1e3 * floor_peak)
        row["x_floor_at_shape"] = statistics.median(p50 / f["best"] for p50, f in zip(round_p50[row["path"]], floors))
        row["x_quietest_floor_at_shape"] = row["p50_ms"] / (1e3 * floor_shape)

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, " \
              f"torch {torch.__version__}"
    print(f"decision: L={args.candidates}, K={args.steps}, chunk {args.chunk}x{args.act_dim}, obs {args.obs_dim}, "
          f"hidden 512x3, {args.keypoints} keypoints; {args.decisions} decisions after {args.warmup} warm-up")
    print(f"machine: {machine}")
    print(f"matmul FLOPs per decision: {flops / 1e6:.1f} M; large-GEMM throughput {peak:.0f} GFLOP/s")
    print(f"floor at peak: {1e3 * floor_peak:.2f} ms   floor at shape (the decision's GEMMs alone, each by the "
          f"faster library): {1e3 * statistics.median(f['best'] for f in floors):.2f} ms median over rounds, "
          f"{1e3 * floor_shape:.2f} quietest (torch's kernels {1e3 * at_shape['torch']:.2f}, "
          f"ONNX Runtime's {1e3 * at_shape['onnxruntime']:.2f}, quietest)\n")
    print(f"| {'path':<24} | p50 ms | p99 ms | x floor (peak) | x floor (at shape, by round) | x quietest floor (at shape) |")
    print(f"|{'-' * 26}|--------|--------|----------------|-----------------------------|-----------------------------|")
    for row in rows:
        print(f"| {row['path']:<24} | {row['p50_ms']:6.2f} | {row['p99_ms']:6.2f} | {row['x_floor_peak']:14.1f} | "
              f"{row['x_floor_at_shape']:27.2f} | {row['x_quietest_floor_at_shape']:27.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "flops": flops, "peak_gflops": peak, "floor_peak_ms": 1e3 * floor_peak,
                       "floor_at_shape_ms": 1e3 * floor_shape,
                       "floor_at_shape_ms_by_round": [1e3 * f["best"] for f in floors],
                       "at_shape_ms_by_library": {k: 1e3 * v for k, v in at_shape.items()}, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
