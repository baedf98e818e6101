"""otpr-export-onnx: write a model directory's ONNX graphs (the whole decision; Q, V, u, v).

    otpr-export-onnx --model models/lift [--output models/lift/onnx] [--num-candidates 8]

Then ``otpr-evaluate --backend onnx`` and the policy server's ``backend: onnx`` use them through
ONNX Runtime (TensorRT, then CUDA, then CPU execution providers, whichever loads).
"""

import argparse
import json
import sys

from otpr_ros.model.directory import ModelError
from otpr_ros.model.onnx_export import export_onnx


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="otpr-export-onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", help="directory for the graphs (default: <model>/onnx)")
    parser.add_argument("--num-candidates", type=int, help="L used to trace (the graph accepts any L)")
    args = parser.parse_args(argv)
    try:
        out = export_onnx(args.model, args.output, args.num_candidates)
    except ModelError as error:
        print(f"otpr-export-onnx: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"output": str(out), "graphs": sorted(p.name for p in out.glob("*.onnx"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
