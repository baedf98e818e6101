"""otpr-pretrain: train a diffusion policy, its critic and its potentials from demonstrations and
write a model directory (see otpr_ros/model/directory.py).

    otpr-pretrain --task lift --dataset data/lift_mixed.hdf5 --output models/lift \\
             --policy-steps 6000 --critic-steps 3000 --eval-episodes 50

The configuration is config/otpr.yaml (Franka Kitchen: config/otpr_kitchen.yaml; obs_dim from the task) unless
--config is given; --set changes single settings over it (diffusion.pretrain_lr=1e-4). TensorBoard scalars go to
--logdir (default runs/pretrain_<task>). With --eval-episodes, the model is evaluated on
seeds --eval-seed.. (keep them apart from the demonstrations' seeds) and the card says so.

--init MODEL goes on from a model directory: its policy (weights and EMA weights), normalisers,
observation keys and configuration (config.yaml, with --set over it) are the start, the policy
steps are added to its own, and the critic and potentials are trained afresh (more policy steps
for a shipped model: otpr-pretrain --task kitchen_complete --init models/kitchen_complete ...).
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from otpr_ros.core.config import OTPRConfig, with_settings
from otpr_ros.core.critic import CONVERGED_ERROR, value_error
from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
from otpr_ros.model.directory import ModelError, ModelInfo, load_model, save_model
from otpr_ros.package_files import pretraining_config
from otpr_ros.sim.evaluation import EvalSettings, evaluate, score_cell
from otpr_ros.sim.tasks import SIM_TASKS, is_kitchen, sim_task
from otpr_ros.training.pretraining import held_out_episodes, pretrain


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="otpr-pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=sorted(SIM_TASKS))
    parser.add_argument("--dataset", required=True, nargs="+", help="robomimic HDF5 file(s)")
    parser.add_argument("--output", required=True, help="model directory to write")
    parser.add_argument("--config", help="OTPR YAML, section otpr (default: config/otpr.yaml, Franka Kitchen "
                                         "config/otpr_kitchen.yaml; obs_dim, when it has none, from the task)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a setting over the configuration, e.g. diffusion.pretrain_lr=1e-4 (kept in the "
                             "model's config.yaml and in its card's command)")
    parser.add_argument("--obs-keys", help="the observation the model takes, as keys of the demonstration file "
                        "(default the task's own; Franka Kitchen: positions, D4RL's observation without "
                        "velocities; docs/kitchen.md)")
    parser.add_argument("--policy-steps", type=int, default=6000)
    parser.add_argument("--critic-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", help="TensorBoard directory (default runs/pretrain_<task>)")
    parser.add_argument("--eval-episodes", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=100_000)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    parser.add_argument("--init", metavar="MODEL", help="a model directory of the same task to go on from: its "
                        "policy, normalisers, observation keys and config.yaml (not with --config or --obs-keys)")
    args = parser.parse_args(argv)
    if min(args.policy_steps, args.critic_steps, args.eval_episodes) < 0 or args.batch_size < 1:
        parser.error("step and episode counts must be >= 0, --batch-size >= 1")
    if args.init and (args.config or args.obs_keys):
        parser.error("--init takes the model's own config.yaml and observation keys: leave out --config and "
                     "--obs-keys")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "otpr-pretrain " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    task = sim_task(args.task)
    config_path = Path(args.config) if args.config else pretraining_config(args.task)
    init = start_card = None
    if args.init:
        try:
            init = load_model(args.init, device=args.device)
        except ModelError as error:
            print(f"otpr-pretrain: --init: {error}", file=sys.stderr)
            return 2
        if init.info.task != args.task:
            print(f"otpr-pretrain: --init {args.init} is a {init.info.task} model, not {args.task}", file=sys.stderr)
            return 2
        config_path = Path(args.init) / "config.yaml"
        start_card = (Path(args.init) / "MODEL_CARD.md").read_text()      # before --output may replace it
    try:
        obs_keys, obs_dim = task.observation(init.info.obs_keys if init else
                                             args.obs_keys.split(",") if args.obs_keys else None)
        config = with_settings(OTPRConfig.from_yaml(config_path, defaults={"obs_dim": obs_dim}), args.set,
                               where="--set")
    except ValueError as error:
        print(f"otpr-pretrain: {error}", file=sys.stderr)
        return 2
    config.device, config.seed = args.device, args.seed
    if config.act_dim != task.act_dim:
        print(f"otpr-pretrain: {config_path} says act_dim {config.act_dim}; {args.task}'s actions have "
              f"{task.act_dim}", file=sys.stderr)
        return 2
    try:
        dataset = RobomimicDataset(args.dataset, obs_keys, act_dim=config.act_dim, split="train")
    except (ValueError, OSError) as error:
        print(f"otpr-pretrain: {error} (demonstrations: otpr-collect-demos --task {args.task} ... --output <file>)",
              file=sys.stderr)
        return 2
    if dataset.obs_dim != config.obs_dim:
        print(f"otpr-pretrain: {args.dataset}: observation has {dataset.obs_dim} dims, {config_path} says "
              f"{config.obs_dim}", file=sys.stderr)
        return 2
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(args.logdir or f"runs/pretrain_{args.task}")
    total = args.policy_steps + args.critic_steps + config.transport.warmup_steps
    with tqdm(total=total, desc=f"pretrain {args.task}", unit="step") as bar:
        result = pretrain(dataset, config, args.policy_steps, args.critic_steps, args.batch_size,
                          log=writer.add_scalar, progress=bar.update, quaternions=task.quaternions, init=init)
    writer.close()
    critic_check = critic_diagnostic(args.dataset, obs_keys, config, result)
    if critic_check:
        print(f"otpr-pretrain: critic on {critic_check['episodes']} held-out demonstrations: "
              f"{describe_critic(critic_check)}")
    info = ModelInfo(task=args.task, obs_keys=list(obs_keys), obs_dim=config.obs_dim, act_dim=config.act_dim,
                     chunk=config.chunk, action_low=[-1.0] * config.act_dim, action_high=[1.0] * config.act_dim,
                     control_hz=task.control_hz,
                     extra={"datasets": [str(p) for p in args.dataset], "demos": len(dataset.demos),
                            "dataset_commands": dataset_commands(dataset),
                            "seed": args.seed, "torch": torch.__version__, **result.stats,
                            "init": init and {"model": str(args.init), "weights_sha256": init.weights_sha256,
                                              "policy_steps": policy_steps_in_all(init.info.extra)},
                            "critic_diagnostic": critic_check})
    card = model_card(args, command, info, config, None, start_card)
    output = save_model(args.output, result.agent, info, result.obs_normalizer, result.action_normalizer, card)
    summary = None
    if args.eval_episodes:
        summary = card_evaluation(args.task, output, args.eval_seed, args.eval_episodes)
        output = save_model(args.output, result.agent, info, result.obs_normalizer, result.action_normalizer,
                            model_card(args, command, info, config, summary, start_card))
    if not args.no_onnx:
        from otpr_ros.model.onnx_export import export_onnx
        export_onnx(output)
    print(json.dumps({"output": str(output), **result.stats,
                      "evaluation": summary.to_dict() if summary else None}, default=float))
    return 0


def critic_diagnostic(paths, obs_keys, config, result) -> dict | None:
    """``value_error`` of the pre-trained critic on the files' held-out (valid split)
    demonstrations; None when the files hold none."""
    held_out = RobomimicDataset(paths, obs_keys, act_dim=config.act_dim, split="valid", split_required=False)
    if not held_out.demos:
        return None
    return value_error(result.agent.critic, held_out_episodes(held_out, config, result.obs_normalizer,
                                                              result.action_normalizer, result.agent.device))


def describe_critic(check: dict) -> str:
    verdict = ("converged" if check["converged"] else
               f"NOT converged (>= {CONVERGED_ERROR}: Q is not yet a value function; more --critic-steps)")
    return (f"mean |Q - discounted return| {check['mean_abs_error']:.3f}, Q at the first step "
            f"{check['q_start']:.3f} against the return {check['return_start']:.3f}: {verdict}")


def dataset_commands(dataset) -> list:
    """The command behind each dataset file that the project made (otpr-collect-demos, or
    otpr-bag-to-demos from a bag)."""
    commands = []
    for path, env_args in dataset.env_args_by_file.items():
        made = (env_args or {}).get("otpr")
        if made and made.get("source") == "rosbag2":
            commands.append(f"otpr-bag-to-demos {shlex.quote(made['bag'])} --task {made['task']} --output "
                            f"{shlex.quote(path)}")
        elif made:
            commands.append(f"otpr-collect-demos --task {made['task']} --episodes {made['episodes_run']} --quality "
                            f"{made['quality']} --seed {made['seed']} --output {shlex.quote(path)}")
    return commands


def summary_mode(config) -> str:
    if config.agent.eval_mode == "single":
        return "eval_mode single (L = 1: the diffusion policy alone)"
    return f"eval_mode argmax (arg-max of H over L = {config.agent.num_candidates})"


def card_evaluation(task, model_dir, first_seed, episodes, processes=2):
    """The model directory evaluated on seeds ``first_seed``.. with a progress bar: the summary a
    card's ``evaluation_lines`` describe."""
    with tqdm(total=episodes, desc=f"evaluate {task}", unit="ep") as bar:
        summary, _ = evaluate(EvalSettings(task, str(model_dir)), range(first_seed, first_seed + episodes),
                              processes=processes, progress=lambda r: bar.update(1))
    return summary


def evaluation_lines(task, summary, first_seed, config) -> list:
    """A model card's lines for an evaluation ``summary`` on seeds ``first_seed``.. (None: not evaluated)."""
    if summary is None:
        return ["Not evaluated."]
    low, high = summary.ci95
    lines = []
    if is_kitchen(task):
        lines.append(f"{score_cell(summary).capitalize()} (in brackets: the 95 % CI), mean sub-tasks done "
                     f"{summary.mean_return:.2f} of 4, as the paper reports Kitchen. All four targets:")
    lines.append(f"Success {summary.successes}/{summary.episodes} = {summary.success_rate:.0%} "
                 f"(95 % CI {low:.0%}-{high:.0%}), mean episode length {summary.mean_length:.1f} steps, "
                 f"on seeds {first_seed}-{first_seed + summary.episodes - 1} (not used for the "
                 f"demonstrations), {summary_mode(config)}{executed(config)}, torch backend.")
    return lines


def policy_steps_in_all(extra: dict):
    """A model's policy steps, those of the model it went on from (``--init``) included."""
    start = extra.get("init")
    return extra.get("policy_steps", 0) + (start["policy_steps"] or 0 if start else 0)


def executed(config) -> str:
    steps = config.agent.execute_steps
    return f", the first {steps} actions of each chunk of {config.chunk} executed" if steps else ""


def started_from(model, card: str) -> list:
    """A card's lines for the model a policy went on from (``--init``): its card, headings one level down."""
    fenced, lines = False, []
    for line in card.rstrip("\n").splitlines():
        fenced = fenced != line.startswith("```")
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return ["## The model it started from", "", f"{model}'s card when this one was made:", "", *lines, ""]


def model_card(args, command, info, config, summary, start_card=None) -> str:
    extra = info.extra
    lines = [f"# otpr_ros model: {args.task}", "",
             f"Diffusion policy (DDPM, chunks of {info.chunk} x {info.act_dim}), IQL critic and OT potentials,",
             "pre-trained offline by `otpr-pretrain`. Observation keys, in order: "
             + ", ".join(f"`{k}`" for k in info.obs_keys) + f" ({info.obs_dim} dims).", "",
             "## Training", "",
             f"- datasets: {', '.join(extra['datasets'])} ({extra['demos']} demonstrations, "
             f"{extra['pairs']} observation/chunk pairs)",
             f"- steps: {extra['policy_steps']} policy (noise matching), {extra['critic_steps']} critic (IQL), "
             f"{extra['dual_steps']} dual (potentials)",
             f"- seed {extra['seed']}, torch {extra['torch']}"]
    start = extra.get("init")
    if start:
        lines.append(f"- policy and normalisers started from {start['model']} (weights.pt sha256 "
                     f"{start['weights_sha256'][:12]}, {start['policy_steps']} policy steps of its own; its card "
                     f"says how it was made): {policy_steps_in_all(extra)} in all")
    check = extra.get("critic_diagnostic")
    lines.append(f"- critic on {check['episodes']} held-out demonstrations (valid split): {describe_critic(check)}"
                 if check else "- critic: no held-out demonstrations to measure it on")
    lines += ["",
             "## Offline evaluation", ""]
    lines += evaluation_lines(args.task, summary, args.eval_seed, config)
    lines += ["", "## Reproduce", "", "```", *extra.get("dataset_commands", []), command, "```", ""]
    if start_card is not None:
        lines += started_from(args.init, start_card)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
