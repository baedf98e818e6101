"""Demonstrations from the scripted experts, in parallel processes.

Each worker process owns one environment (MuJoCo holds the GIL, so threads would not run
in parallel) and runs whole expert episodes; only finished episodes cross processes.
"""

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from otpr_ros.sim.tasks import calvin_env_kwargs, is_calvin, is_kitchen
from otpr_ros.sim.worker_pool import spawn_pool

# "mixed quality" imitates robomimic's multi-human data: operators of several skills
QUALITY_MIXES = {
    "expert": [(1.0, 0.1, 1.0)],                                       # (share, noise, speed)
    "mixed": [(0.4, 0.1, 1.0), (0.35, 0.3, 0.6), (0.25, 0.5, 0.4)],
}


def env_args(task: str, otpr: dict) -> dict:
    """A dataset's ``env_args``: robomimic's environment description, and where it came from."""
    from otpr_ros.sim.robomimic_env import CONTROL_HZ, TASKS
    if is_kitchen(task):                       # gymnasium-robotics' environment and its targets
        from otpr_ros.sim.kitchen_env import kitchen_targets
        return {"env_name": "FrankaKitchen-v1", "type": "gymnasium",
                "env_kwargs": {"tasks_to_complete": list(kitchen_targets(task))}, "otpr": {"task": task, **otpr}}
    if is_calvin(task):                        # calvin_env's scene D, the task(s) its oracle judges
        return {"env_name": "calvin_scene_D", "type": "calvin_env",
                "env_kwargs": calvin_env_kwargs(task), "otpr": {"task": task, **otpr}}
    return {"env_name": TASKS[task].env_name, "type": 1,
            "env_kwargs": {"robots": ["Panda"], "control_freq": CONTROL_HZ, "has_renderer": False,
                           "has_offscreen_renderer": False, "use_camera_obs": False, "reward_shaping": False},
            "otpr": {"task": task, **otpr}}


@dataclass(frozen=True)
class EpisodeJob:
    seed: int
    noise: float
    speed: float
    plan: tuple = ()             # Franka Kitchen: the sub-tasks the expert does, in order (empty: the targets)


_worker = {}


def _init_worker(task: str, horizon):
    from otpr_ros.sim.tasks import make_env
    _worker["env"] = make_env(task, horizon)


def make_task_expert(env, job: EpisodeJob):
    """The scripted expert of the environment's task for one episode (seeded by the job)."""
    rng = np.random.default_rng(job.seed)
    if job.plan or is_kitchen(env.task):
        from otpr_ros.sim.kitchen_experts import KitchenExpert
        return KitchenExpert(env, job.noise, job.speed, rng, plan=job.plan or None)
    if is_calvin(env.task):
        from otpr_ros.sim.calvin_experts import CalvinExpert
        return CalvinExpert(env, job.noise, job.speed, rng)
    from otpr_ros.sim.experts import make_expert
    return make_expert(env, job.noise, job.speed, rng)


def run_expert_episode(job: EpisodeJob) -> dict:
    """One episode of the scripted expert; the record holds robomimic's per-step fields.
    ``success``: the task done, or, for a job with a plan, every sub-task of the plan (the
    episode ends when the expert has backed away from the last)."""
    env = _worker["env"]
    env.reset(seed=job.seed)
    expert = make_task_expert(env, job)
    obs, actions, rewards, dones, states = [], [], [], [], []
    success = False
    for _ in range(env.horizon):
        obs.append(env.stored_observation())
        states.append(env.sim_state())
        action = expert.act()
        _, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rewards.append(reward)
        dones.append(float(terminated))
        success = set(job.plan) <= set(env.achieved) if job.plan else info["success"]
        if terminated or truncated or (job.plan and expert.finished):
            break
    next_obs = obs[1:] + [env.stored_observation()]
    attrs = {"seed": job.seed, "noise": job.noise, "speed": job.speed}
    if job.plan:
        attrs["plan"] = ",".join(job.plan)
    if is_calvin(env.task):
        attrs["tasks"] = ",".join(env.chain.tasks)
    return {
        "obs": {k: np.stack([o[k] for o in obs]) for k in obs[0]},
        "next_obs": {k: np.stack([o[k] for o in next_obs]) for k in obs[0]},
        "actions": np.asarray(actions), "rewards": np.asarray(rewards), "dones": np.asarray(dones),
        "states": np.asarray(states), "success": success, "regrasps": getattr(expert, "regrasps", 0),
        "attrs": attrs,
    }


def quality_jobs(episodes: int, quality: str, seed: int, noise: float | None = None):
    """Episode jobs for a quality mix; ``noise`` overrides the mix's noise (for 'expert')."""
    if quality not in QUALITY_MIXES:
        raise ValueError(f"quality: expected one of {sorted(QUALITY_MIXES)}, got {quality!r}")
    jobs, shares = [], QUALITY_MIXES[quality]
    counts = np.floor(np.array([s for s, _, _ in shares]) * episodes).astype(int)
    counts[0] += episodes - counts.sum()
    for count, (_, mix_noise, speed) in zip(counts, shares):
        jobs += [EpisodeJob(seed + len(jobs) + i, mix_noise if noise is None else noise, speed)
                 for i in range(count)]
    return jobs


def task_jobs(task: str, episodes: int, quality: str, seed: int, noise: float | None = None):
    """Episode jobs for a task: ``quality_jobs``; a Franka Kitchen task's demonstrations are
    defined by the task instead (``kitchen_experts.demonstration_plans``, drawn from ``seed``):
    only ``expert`` quality, each job with its plan."""
    if not is_kitchen(task):
        return quality_jobs(episodes, quality, seed, noise)
    if quality != "expert":
        raise ValueError(f"quality {quality!r}: a Franka Kitchen task's demonstrations are defined by the task "
                         f"(complete, partial, mixed); use quality 'expert' (with its noise)")
    from otpr_ros.sim.kitchen_experts import demonstration_plans
    plans = demonstration_plans(task, episodes, np.random.default_rng(seed))
    return [EpisodeJob(job.seed, job.noise, job.speed, plan)
            for job, plan in zip(quality_jobs(episodes, quality, seed, noise), plans)]


@dataclass
class RunStats:
    episodes: int
    successes: int
    steps: int
    seconds: float

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds


def worker_pool(task: str, processes: int, horizon=None) -> ProcessPoolExecutor:
    """Processes that each own one environment of ``task``."""
    return spawn_pool(processes, _init_worker, (task, horizon))


def run_episodes(task: str, jobs, processes: int = 2, horizon=None, progress=None):
    """Yield episode records in job order; ``progress`` is called once per episode."""
    with worker_pool(task, processes, horizon) as pool:
        for record in pool.map(run_expert_episode, jobs):
            if progress is not None:
                progress(record)
            yield record


def measure(task: str, jobs, processes: int, horizon=None) -> RunStats:
    """Success and aggregate env steps/s (after the workers have started)."""
    with worker_pool(task, processes, horizon) as pool:
        list(pool.map(run_expert_episode, jobs[:processes]))      # start-up, not counted
        start = time.perf_counter()
        records = list(pool.map(run_expert_episode, jobs))
        seconds = time.perf_counter() - start
    return RunStats(len(records), sum(r["success"] for r in records),
                    sum(len(r["actions"]) for r in records), seconds)
