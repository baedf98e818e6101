"""Where an ONNX Runtime (CPU) decision's time goes, beyond its GEMMs.

Times three graphs of one model's decision, interleaved round by round so that the
machine's neighbours weigh on each alike:

- shipped: the model's ``decision.onnx`` as ``otpr-export-onnx`` writes it (Mish in closed form);
- ReLU for Mish: the same export with every Mish written as one ReLU node. Not the policy
  (its outputs differ); it bounds what a fused one-node Mish kernel could give;
- GEMMs only: the policy network's own weights as a chain of Gemm nodes in the order one
  decision runs them (action part of the first layer, the blocks, the output layer, K
  times), nothing else. What the graph costs with every other node free.

For each: the nodes ONNX Runtime runs after its own graph optimisation, by kind, and p10/p50
of a decision (L from the model, one state). The gap between the rows is per-node dispatch
of small elementwise kernels (8 x 512 tensors), not arithmetic.

Usage: python docs/experiments/scripts/onnx_anatomy.py --model models/lift [--rounds 20] [--threads 2] [--json out.json]
"""

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from otpr_ros.model.onnx_export import OPSET, export_onnx
from otpr_ros.model.directory import load_model


def relu_for_mish(g, x):
    return g.op("Relu", x)


def gemm_chain(model, path, num_candidates):
    """The policy's GEMMs of one decision, chained: K x (action part of the first layer,
    each block, output layer), with the model's weights and biases."""
    policy, config = model.agent.policy, model.config
    net = policy.ema_net
    steps = len(policy.sampling_steps(config.diffusion.sampler, config.diffusion.ddim_steps))
    layers = [(net.input_layer.weight[:, :config.action_dim], net.input_layer.bias)]
    layers += [(block.linear.weight, block.linear.bias) for block in net.blocks]
    layers.append((net.output_layer.weight, net.output_layer.bias))
    initializers = []
    for j, (weight, bias) in enumerate(layers):
        initializers.append(numpy_helper.from_array(weight.detach().numpy().T.copy(), f"w{j}"))
        initializers.append(numpy_helper.from_array(bias.detach().numpy().copy(), f"b{j}"))
    nodes, current = [], "x"
    for step in range(steps):
        for j in range(len(layers)):
            nodes.append(helper.make_node("Gemm", [current, f"w{j}", f"b{j}"], [f"s{step}_{j}"]))
            current = f"s{step}_{j}"
    width = config.action_dim
    graph = helper.make_graph(nodes, "gemm_chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [num_candidates, width])],
                              [helper.make_tensor_value_info(current, TensorProto.FLOAT, [num_candidates, width])],
                              initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8),
              path)
    return path


def session(path, threads, optimised_copy=None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3          # saving the optimised copy warns that it is machine-specific
    if optimised_copy:
        options.optimized_model_filepath = str(optimised_copy)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure(args, work: Path) -> list:
    """Exports the three graphs under ``work``, times them, prints the table; returns its rows."""
    model = load_model(args.model, device="cpu")
    num_candidates = model.config.agent.num_candidates
    graphs = {"shipped (closed-form Mish)": export_onnx(args.model, work / "shipped") / "decision.onnx",
              "ReLU for Mish (bound)": export_onnx(args.model, work / "relu", mish_symbolic=relu_for_mish)
              / "decision.onnx",
              "GEMMs only": gemm_chain(model, work / "gemms.onnx", num_candidates)}
    sessions, feeds, node_kinds = {}, {}, {}
    rng = np.random.default_rng(0)
    for name, path in graphs.items():
        optimised = path.with_name(path.stem + ".optimised.onnx")
        sessions[name] = session(path, args.threads, optimised)
        node_kinds[name] = collections.Counter(node.op_type for node in onnx.load(optimised).graph.node)
        feed = {}
        for tensor in sessions[name].get_inputs():
            shape = [1 if dim == "batch" else num_candidates if dim == "candidates" else dim
                     for dim in tensor.shape]
            feed[tensor.name] = rng.uniform(-1, 1, shape).astype(np.float32)
        feeds[name] = feed

    times = {name: [] for name in graphs}
    for _ in range(args.rounds):
        for name, run in sessions.items():
            for _ in range(10):
                run.run(None, feeds[name])
            for _ in range(40):
                start = time.perf_counter()
                run.run(None, feeds[name])
                times[name].append(time.perf_counter() - start)

    rows = []
    print(f"model {args.model}, L={num_candidates}, one state, {args.threads} threads, onnxruntime {ort.__version__}, "
          f"{40 * args.rounds} decisions per graph (interleaved)\n")
    print(f"| {'graph':<27} | nodes | GEMM nodes  | p10 ms | p50 ms |")
    print(f"|{'-' * 29}|-------|-------------|--------|--------|")
    for name, samples in times.items():
        samples.sort()
        kinds = node_kinds[name]
        row = {"graph": name, "nodes": sum(kinds.values()), "gemms": kinds["Gemm"] + kinds["FusedGemm"] + kinds["MatMul"],
               "p10_ms": 1e3 * samples[len(samples) // 10], "p50_ms": 1e3 * samples[len(samples) // 2],
               "node_kinds": dict(kinds.most_common())}
        rows.append(row)
        print(f"| {name:<27} | {row['nodes']:5d} | {row['gemms']:11d} | {row['p10_ms']:6.2f} | {row['p50_ms']:6.2f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory (e.g. models/lift)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 40 timed decisions per graph")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds: at least 5 (200 decisions per graph)")

    with tempfile.TemporaryDirectory(prefix="otpr_anatomy_") as work:
        rows = measure(args, Path(work))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "threads": args.threads, "onnxruntime": ort.__version__, "rows": rows},
                      f, indent=1)


if __name__ == "__main__":
    main()
