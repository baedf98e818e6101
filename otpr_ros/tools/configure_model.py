"""otpr-configure-model: a model directory with acting or fine-tuning settings changed, the weights
the same: what a bridge, a server and a learner read from it (e.g. how much of each chunk is executed).

    otpr-configure-model --model runs/kitchen160k/kitchen_mixed --output models/kitchen_mixed \\
        --set agent.execute_steps=4 --eval-episodes 50 --eval-seed 100000

Only settings that leave the networks' shapes alone are accepted (those of ``otpr-finetune --set``).
The card keeps what it said and adds the change, the command and, with --eval-episodes, an
evaluation with the new settings; the ONNX graphs are exported again unless --no-onnx.
Nothing is written when a setting is refused.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

from otpr_ros.core.agent import OTPRAgent
from otpr_ros.model.directory import ModelError, amend_card, load_model, read_config, save_model
from otpr_ros.tools.pretrain import card_evaluation, evaluation_lines
from otpr_ros.training.online_learning import overridden_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="otpr-configure-model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory to start from")
    parser.add_argument("--output", required=True, help="model directory to write (may be --model)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", required=True,
                        help="a setting to change, e.g. agent.execute_steps=4")
    parser.add_argument("--eval-episodes", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    args = parser.parse_args(argv)
    if args.eval_episodes < 0 or args.processes < 1:
        parser.error("--eval-episodes must be >= 0, --processes >= 1")
    return args


def changed_settings(before: dict, after: dict, prefix="") -> list:
    """``section.key: old -> new`` for every setting that differs."""
    changes = []
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            changes += changed_settings(old, value, f"{prefix}{key}.")
        elif old != value:
            changes.append(f"{prefix}{key}: {old} -> {value}")
    return changes


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "otpr-configure-model " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        model = load_model(args.model)
        original = read_config(args.model)            # as written (load_model sets the device it loads on)
        config = overridden_config(original, args.set)
    except (ModelError, ValueError) as error:
        print(f"otpr-configure-model: {error}; nothing written", file=sys.stderr)
        return 2
    changes = changed_settings(original.to_dict(), config.to_dict())
    if not changes:
        print(f"otpr-configure-model: {args.set} change nothing in {args.model}/config.yaml; nothing written",
              file=sys.stderr)
        return 2
    agent = OTPRAgent(config)
    agent.load_weights(model.agent.weights_state_dict())
    info = model.info
    info.extra = {**info.extra, "configured": {"from": str(args.model), "settings": list(args.set)}}
    card = (Path(args.model) / "MODEL_CARD.md").read_text().rstrip("\n") + "\n\n" + "\n".join([
        "## Settings changed after training", "",
        "Changed over the configuration above, the weights the same (sha256 " + model.weights_sha256[:16] + "...); "
        "the evaluation above was made before the change:", "",
        *[f"- {change}" for change in changes], "",
        "```", command, "```", ""])
    output = save_model(args.output, agent, info, model.obs_normalizer, model.action_normalizer, card)
    summary = None
    if args.eval_episodes:
        summary = card_evaluation(info.task, output, args.eval_seed, args.eval_episodes, args.processes)
        amend_card(output, "\n".join(["", "## Offline evaluation with these settings", "",
                                      *evaluation_lines(info.task, summary, args.eval_seed, config), ""]))
    if not args.no_onnx:
        from otpr_ros.model.onnx_export import export_onnx
        export_onnx(output)
    print(json.dumps({"output": str(output), "changed": changes,
                      "evaluation": summary.to_dict() if summary else None}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
