"""otpr-evaluate: run a model directory on its task in parallel processes; print and write JSON.

    otpr-evaluate --model models/lift --episodes 50 --seed 100000 --backend onnx --output eval.json

Reports the success rate with a 95 % (Wilson) confidence interval and the mean episode
length. Episode i uses seed --seed + i; keep them apart from the demonstrations' seeds.
"""

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from otpr_ros.core.resampling import SELECTIONS
from otpr_ros.model.directory import ModelError, read_info
from otpr_ros.model.policy import BACKENDS
from otpr_ros.package_files import shipped_model
from otpr_ros.sim.evaluation import (EvalSettings, acting_model, chain_cells, evaluate, evaluation_candidates,
                                     instruction_cells, score_cell)
from otpr_ros.sim.tasks import CALVIN_MULTI, SIM_TASKS, is_calvin, is_kitchen


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="otpr-evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the shipped model of --task)")
    parser.add_argument("--task", choices=sorted(SIM_TASKS), help="default: the model's task")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument("--num-candidates", type=int,
                        help="L (default from the model's config: 1 for eval_mode single, else agent.num_candidates)")
    parser.add_argument("--selection", default="argmax", choices=SELECTIONS)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--horizon", type=int, help="control steps per episode (per instruction of a --chain)")
    parser.add_argument("--chain", type=int, default=1, metavar="N",
                        help=f"{CALVIN_MULTI}: each episode N instructions in a row, drawn from its seed; reports "
                             "CALVIN's long-horizon metric (N = 5 in CALVIN's evaluation)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="act with a changed setting (torch backend), e.g. transport.beta=0 to pick "
                             "candidates without the keypoint cost; the same settings as finetune --set")
    parser.add_argument("--output", help="JSON file to write")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.processes < 1 or (args.num_candidates is not None and args.num_candidates < 1):
        parser.error("--episodes, --processes and --num-candidates must be >= 1")
    if not args.model and not args.task:
        parser.error("give --model or --task")
    if not 1 <= args.chain <= 5:
        parser.error("--chain must be 1..5 (CALVIN's chains are at most five instructions)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    model_dir = Path(args.model) if args.model else shipped_model(args.task)
    try:
        info, _ = read_info(model_dir)
    except ModelError as error:
        print(f"otpr-evaluate: {error}", file=sys.stderr)
        return 2
    task = args.task or info.task
    if task != info.task:
        print(f"otpr-evaluate: {model_dir} was trained for {info.task!r}, not {task!r}", file=sys.stderr)
        return 2
    if args.chain != 1 and task != CALVIN_MULTI:
        print(f"otpr-evaluate: --chain {args.chain}: only a {CALVIN_MULTI} model follows chains of instructions, "
              f"not {task!r}", file=sys.stderr)
        return 2
    candidates = args.num_candidates or evaluation_candidates(model_dir)     # recorded in the JSON
    settings = EvalSettings(task, str(model_dir), args.backend, candidates, args.selection, args.horizon,
                            tuple(args.set), args.chain)
    try:
        acting_model(settings)          # a bad setting is named here, before any worker starts
    except (ModelError, ValueError) as error:
        print(f"otpr-evaluate: {error}", file=sys.stderr)
        return 2
    with tqdm(total=args.episodes, desc=f"evaluate {task} ({args.backend})", unit="ep") as bar:
        successes = []

        def progress(record):
            successes.append(record["success"])
            bar.update(1)
            bar.set_postfix(success=f"{sum(successes)}/{len(successes)}")
        summary, records = evaluate(settings, range(args.seed, args.seed + args.episodes), args.processes, progress)
    providers = sorted({r.pop("provider") for r in records})
    print(f"otpr-evaluate: backend {args.backend} ran on {', '.join(providers)}")
    result = {"model": str(model_dir), "task": task, "chain": args.chain, "backend": args.backend,
              "providers": providers,
              "selection": args.selection, "overrides": args.set,
              "num_candidates": candidates, **summary.to_dict(), "episodes_detail": records}
    low, high = summary.ci95
    print(f"{task}: success {summary.successes}/{summary.episodes} = {summary.success_rate:.1%} "
          f"(95 % CI {low:.1%}-{high:.1%}), mean length {summary.mean_length:.1f} steps"
          + (f", {score_cell(summary)}" if is_kitchen(task) else ""))
    if is_calvin(task):
        print(f"{task}: by first instruction: {instruction_cells(records)}")
    if args.chain > 1:
        print(f"{task}: chains of {args.chain}, instructions done in a row: {chain_cells(records, args.chain)}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
