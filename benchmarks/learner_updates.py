"""Cost of one OTPR update on this machine, step by step (dual, IQL critic, actor) and whole,
against its floor: the step's own matrix products timed bare, at the same shapes, in the
same run.

    python benchmarks/learner_updates.py --task lift
    python benchmarks/learner_updates.py --task lift --device cuda --paper --compile-mode default reduce-overhead

For the shipped model of a task with its demonstrations (``make models`` writes them to
data/) and the fine-tuning settings the task's learner runs (its YAML ``overrides``; with
``--paper`` also the paper's actor batch 1 024 and 20-step DDPM candidates), each update step
is run eagerly and with ``agent.compile_updates`` (``--compile``), in each ``--compile-mode``
(``reduce-overhead``: CUDA graphs of the compiled parts). A step's FLOPs and
matrix-product shapes are recorded once, eagerly, by a dispatch mode that sees every
``mm``/``addmm``/``bmm`` of its forward and backward passes; its floor is the time of
exactly those products on random operands, each shape timed bare. Rounds interleave the
steps and the floors, so a neighbour's load falls on both: ``x floor`` is the median over
rounds of that round's p50 over that round's floor.
"""

import argparse
import json
import os
import platform
import statistics
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from otpr_ros.core.layers import COMPILE_MODES
from otpr_ros.model.directory import load_model
from otpr_ros.package_files import node_parameters, shipped_model
from otpr_ros.training.online_learning import OnlineLearner, apply_overrides, expert_demonstrations

PAPER = ["agent.actor_batch=1024", "agent.actor_sampler=ddpm", "agent.actor_ddim_steps=20"]
aten = torch.ops.aten
MATMULS = {aten.mm: (0, 1), aten.addmm: (1, 2), aten.bmm: (0, 1), aten.baddbmm: (1, 2)}


class MatmulShapes(TorchDispatchMode):
    """Counts the (batch, m, k, n) of every matrix product dispatched while active."""

    def __init__(self):
        super().__init__()
        self.shapes = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        operands = MATMULS.get(func._overloadpacket)
        if operands is not None:
            a, b = (args[i] for i in operands)
            batch = a.shape[0] if a.dim() == 3 else 1
            self.shapes[(batch, a.shape[-2], a.shape[-1], b.shape[-1])] += 1
        elif func._overloadpacket is aten.linear:        # inference mode dispatches it undecomposed
            x, weight = args[0], args[1]
            self.shapes[(1, x.numel() // x.shape[-1], x.shape[-1], weight.shape[0])] += 1
        return func(*args, **(kwargs or {}))


def flops(shapes: Counter) -> int:
    return sum(2 * b * m * k * n * count for (b, m, k, n), count in shapes.items())


def learner_overrides(task: str) -> list:
    return [o for o in node_parameters(task, "learner").get("overrides", []) if o]


class Bench:
    def __init__(self, task, device, overrides, repeats):
        model = load_model(shipped_model(task), device)
        apply_overrides(model, overrides)
        learner = OnlineLearner(model, expert_demonstrations(model))
        self.agent, self.buffer, self.repeats = learner.agent, learner.buffer, repeats
        self.device = self.agent.device
        self.steps = {"dual": self.agent.dual_step, "critic": self.agent.critic_step, "actor": self.agent.actor_step,
                      "update": self.agent.update}

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def seconds(self, function) -> float:
        """p50 of ``repeats`` timed calls."""
        times = []
        for _ in range(self.repeats):
            self.sync()
            start = time.perf_counter()
            function()
            self.sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def compile(self, mode) -> None:
        """``mode``: False (eager) or an ``agent.compile_mode``."""
        self.agent.config.agent.compile_updates = bool(mode)
        self.agent.config.agent.compile_mode = mode or "default"

    def shapes(self, step) -> Counter:
        compiled, self.agent.config.agent.compile_updates = self.agent.config.agent.compile_updates, False
        with MatmulShapes() as recorder:
            self.steps[step](self.buffer)
        self.agent.config.agent.compile_updates = compiled
        return recorder.shapes


def matmul_seconds(shapes, device, repeats) -> dict:
    """Each shape's bare product: the mean of ``repeats`` back-to-back calls after one warm-up."""
    result = {}
    for b, m, k, n in shapes:
        x, y = torch.randn(b, m, k, device=device), torch.randn(b, k, n, device=device)
        product = (lambda: torch.mm(x[0], y[0])) if b == 1 else (lambda: torch.bmm(x, y))
        product()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            product()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result[(b, m, k, n)] = (time.perf_counter() - start) / repeats
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python benchmarks/learner_updates.py --task lift --rounds 5")
    parser.add_argument("--task", default="lift")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each step per round")
    parser.add_argument("--compile", choices=("both", "on", "off"), default="both",
                        help="agent.compile_updates for the timed steps")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, nargs="+", default=["default"],
                        help="agent.compile_mode of the compiled steps, each timed (reduce-overhead: CUDA graphs)")
    parser.add_argument("--paper", action="store_true", help="also the paper's actor settings")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0: torch's default")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = {"task's learner": learner_overrides(args.task)}
    if args.paper:
        settings["paper"] = [o for o in settings["task's learner"] if not o.startswith("agent.actor_")] + PAPER
    variants = ([False] if args.compile != "on" else []) + (args.compile_mode if args.compile != "off" else [])
    benches, shapes, first_call = {}, {}, {}
    for name, overrides in settings.items():
        bench = benches[name] = Bench(args.task, args.device, overrides, args.repeats)
        for step in bench.steps:
            shapes[name, step] = bench.shapes(step)
        for compiled in variants:           # first calls: compilation, caches
            bench.compile(compiled)
            for step, function in bench.steps.items():
                start = time.perf_counter()
                function(bench.buffer)
                bench.sync()
                first_call[name, compiled, step] = time.perf_counter() - start
    device = next(iter(benches.values())).device
    all_shapes = set().union(*shapes.values())
    times = {key: [] for key in first_call}
    floors = {key: [] for key in shapes}
    for _ in range(args.rounds):
        for name, bench in benches.items():
            for compiled in variants:
                bench.compile(compiled)
                for step, function in bench.steps.items():
                    times[name, compiled, step].append(bench.seconds(lambda f=function, b=bench: f(b.buffer)))
        bare = matmul_seconds(all_shapes, device, args.repeats)
        for key, counts in shapes.items():
            floors[key].append(sum(bare[s] * c for s, c in counts.items()))

    rows = []
    for (name, compiled, step), samples in times.items():
        floor = floors[name, step]
        rows.append({"setting": name, "compiled": compiled, "step": step, "ms_p50": 1e3 * statistics.median(samples),
                     "gflop": flops(shapes[name, step]) / 1e9, "floor_ms": 1e3 * statistics.median(floor),
                     "x_floor": statistics.median(t / f for t, f in zip(samples, floor)),
                     "first_call_s": first_call[name, compiled, step]})
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"# {args.task}, {device}, {machine}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds x {args.repeats} calls")
    print("| setting | compiled | step | ms p50 | GFLOP | floor ms | x floor | GFLOP/s | first call s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['setting']} | {r['compiled'] or 'no'} | {r['step']} | {r['ms_p50']:.1f} | "
              f"{r['gflop']:.2f} | {r['floor_ms']:.1f} | {r['x_floor']:.2f} | "
              f"{r['gflop'] / r['ms_p50'] * 1e3:.0f} | {r['first_call_s']:.1f} |")
    print("overrides: " + json.dumps(settings))
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"task": args.task, "device": str(device), "machine": machine, "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "settings": settings, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
