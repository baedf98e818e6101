"""Which term of H ranks a model's candidates. Arg-max over L = 8 candidates by

- H = (u + v - c)_+ / (2 lambda), c = -Qn + beta g: as the model acts;
- the cost alone (v set to 0: for beta = 0 the critic's Qn alone);
- the action potential alone (Q set to 0: v, plus beta g where beta > 0);

and L = 1 (the diffusion policy alone) for reference, on the same held-out seeds.

    python docs/experiments/scripts/ranking_terms.py --task can --set transport.beta=0 \\
        --model models/can --model runs/x/evaluated/step_000004002

The two one-term rankings act with copies of the model whose v or Q output layer is zeroed
(written under ``<output>/models``); nothing else changes. Offline, on demonstration states,
it also reports how v and Qn vary over a state's candidates and how they follow the gripper
command, the part of a chunk they turned out to track on Can. Writes
``<output>/ranking_terms.json`` (kept, so an interrupted run goes on) and ``ranking_terms.md``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from otpr_ros.model.directory import load_model, save_model
from otpr_ros.sim.evaluation import EvalSettings, evaluate, success_cell
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

RANKINGS = [("L = 1 (diffusion policy alone)", 1, None),
            ("H (as the model acts)", 8, None),
            ("cost alone (v = 0)", 8, "v"),
            ("v alone (Q = 0)", 8, "q")]
EVALUATIONS = {name for name, _, _ in RANKINGS}


def output_layers(module: torch.nn.Module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]


def one_term_copy(model_dir: str, zeroed: str, path: Path) -> str:
    """A copy of the model that ranks by one term: ``v`` or ``q`` (both twins and targets) output 0."""
    model = load_model(model_dir, "cpu")
    network = model.agent.potentials.v_net if zeroed == "v" else model.agent.critic
    with torch.no_grad():
        for layer in output_layers(network):
            layer.weight.zero_()
            layer.bias.zero_()
    card = (Path(model_dir) / "MODEL_CARD.md").read_text()
    save_model(path, model.agent, model.info, model.obs_normalizer, model.action_normalizer,
               card + f"\n\nDiagnostic copy (docs/experiments/scripts/ranking_terms.py): {zeroed} output set to 0.\n")
    return str(path)


@torch.no_grad()
def term_statistics(model_dir: str, overrides, states: int = 512) -> dict:
    """Spread of v and Qn over a state's 8 candidates, their correlation, and their
    correlation with the gripper command (last action dimension of every step)."""
    torch.manual_seed(0)
    model = load_model(model_dir, "cpu")
    apply_overrides(model, overrides)
    agent = model.agent
    expert = OnlineLearner(model, expert_demonstrations(model)).buffer.expert
    obs = expert.data["obs"][torch.randperm(expert.size)[:states]]
    d = model.config.diffusion
    candidates = agent.policy.sample(obs, 8, d.sampler, d.ddim_steps, d.eta, generator=agent.generator)
    qn = agent.critic.target_q(obs[:, None], candidates) / agent.q_scale.scale
    v = agent.potentials.v(candidates)
    gripper = candidates.reshape(*candidates.shape[:2], model.config.chunk, model.config.act_dim)[..., -1].mean(-1)

    def centred(x):
        return (x - x.mean(1, keepdim=True)).flatten().numpy()

    def corr(x, y):
        return round(float(np.corrcoef(centred(x), centred(y))[0, 1]), 2)
    return {"v_std": round(float(v.std(1).mean()), 3), "qn_std": round(float(qn.std(1).mean()), 3),
            "corr_v_qn": corr(v, qn), "corr_v_gripper": corr(v, gripper), "corr_qn_gripper": corr(qn, gripper)}


def measure(args, label: str, model_dir: str, results: dict) -> dict:
    row = results[label]
    seeds = range(args.eval_seed, args.eval_seed + args.episodes)
    for name, candidates, zeroed in RANKINGS:
        if name in row:
            continue
        path = model_dir if zeroed is None else one_term_copy(
            model_dir, zeroed, args.output / "models" / f"{label}_{zeroed}_zeroed")
        settings = EvalSettings(args.task, path, "torch", candidates, "argmax", None, tuple(args.set))
        summary, _ = evaluate(settings, seeds, args.processes)
        row[name] = {**summary.record(), "eval_seed": args.eval_seed}
        print(f"ranking terms {label}: {name}: {summary.successes}/{summary.episodes}", flush=True)
        save(args, results)
    if "terms" not in row:
        row["terms"] = term_statistics(model_dir, args.set)
        save(args, results)
    return results


def save(args, results: dict) -> None:
    (args.output / "ranking_terms.json").write_text(json.dumps(results, indent=1))


def table(results: dict, episodes: int) -> str:
    lines = [f"Held-out success ({episodes} episodes, 95 % interval), arg-max over L = 8 unless said", "",
             "| model | " + " | ".join(name for name, _, _ in RANKINGS)
             + " | std over candidates: v / Qn | corr(v, Qn) | corr with gripper: v / Qn |",
             "| --- |" + " --- |" * (len(RANKINGS) + 3)]
    for label, row in results.items():
        cells = []
        for name, _, _ in RANKINGS:
            cells.append(success_cell(row[name]["success_rate"], row[name]["ci95"]))
        t = row["terms"]
        cells += [f"{t['v_std']} / {t['qn_std']}", str(t["corr_v_qn"]), f"{t['corr_v_gripper']} / {t['corr_qn_gripper']}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=["lift", "can", "square"])
    parser.add_argument("--model", action="append", required=True, metavar="DIR",
                        help="model directory; repeat to compare (labelled by the directory name)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="acting settings for every ranking, e.g. transport.beta=0")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--eval-seed", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("runs/ranking_terms"))
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "ranking_terms.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    results = {}
    for model_dir in args.model:
        label = Path(model_dir).name
        row = kept.get(label, {})
        if (row.get("model"), row.get("settings")) != (model_dir, args.set):
            row = {}                       # another model or other settings: measure it all again
        # evaluations on other held-out seeds are measured again; the offline terms are kept
        results[label] = {k: v for k, v in row.items() if k not in EVALUATIONS
                          or (v["episodes"], v["eval_seed"]) == (args.episodes, args.eval_seed)}
        results[label].update(model=model_dir, settings=args.set)
        measure(args, label, model_dir, results)
    text = table(results, args.episodes)
    (args.output / "ranking_terms.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
