"""Which nodes a run starts, with which parameters and names: one plan for both launchers.

``launch/finetune.launch.py`` (a ROS installation) and ``otpr-launch`` (pip-only installs,
no ``ros2`` command line) both start exactly these nodes, with ``config/nodes.yaml`` and
``config/<task>.yaml`` as parameter files and the parameters below on top (a later value
wins), so the two behave the same on the bus.

Fine-tuning in simulation, under ``namespace`` (default ``/otpr``)::

    <ns>/env<i>/sim_bridge     episodes seeded from i * SEEDS_PER_BRIDGE, source_id i
    <ns>/env<i>/policy_server  acts for training: L candidates, compatibility resampling
    <ns>/learner               transitions of every bridge in, policy_update out

Each bridge's ``transition``, ``episode`` and ``learner_progress`` and each server's
``policy_update`` are remapped to ``<ns>/...``, so every bridge feeds the one learner (and
is paced by it) and every server hears it.
On a robot (``use_sim`` false) the robot's drivers take the bridge's place: one server in
``<ns>`` reads their topics.
"""

from dataclasses import dataclass, field

from otpr_ros.sim.evaluation import SEEDS_PER_BRIDGE
from otpr_ros.sim.robomimic_env import TASKS


@dataclass
class NodePlan:
    executable: str               # console script in lib/otpr_ros
    module: str                   # the same entry point as ``python -m module``
    name: str
    namespace: str
    parameters: dict = field(default_factory=dict)        # on top of config/nodes.yaml, config/<task>.yaml
    remappings: dict = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


def node_plan(executable: str, namespace: str, parameters=None, remappings=None) -> NodePlan:
    return NodePlan(executable, f"otpr_ros.nodes.{executable}", executable, namespace, parameters or {},
                    remappings or {})


def check_namespace(namespace: str) -> str:
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if not all(part.replace("_", "a").isalnum() and not part[0].isdigit() for part in namespace.split("/")[1:]):
        raise ValueError(f"namespace: expected names of letters, digits and _ (not starting with a digit), "
                         f"got {namespace!r}")
    return namespace


def finetune_plan(task: str = "lift", num_envs: int = 1, device: str = "auto", backend: str = "torch",
                  model_dir: str = "", use_sim: bool = True, namespace: str = "otpr",
                  episodes: int = 0, mode: str = "fast", output_dir: str = "", env_steps: int = 0,
                  eval_every: int = 0, eval_episodes: int = 50, validation_seed: int = -1) -> list[NodePlan]:
    if mode not in ("fast", "realtime"):
        raise ValueError(f"mode: expected fast or realtime, got {mode!r}")
    if backend not in ("torch", "onnx", "openvino"):
        raise ValueError(f"backend: expected torch, onnx or openvino, got {backend!r}")
    if eval_episodes < 1:
        raise ValueError(f"eval_episodes: expected >= 1, got {eval_episodes}")
    if validation_seed < -1:
        raise ValueError(f"validation_seed: expected a seed >= 0, or -1 for none, got {validation_seed}")
    for name, number in (("episodes", episodes), ("env_steps", env_steps), ("eval_every", eval_every)):
        if number < 0:
            raise ValueError(f"{name}: expected >= 0, got {number}")
    if task not in TASKS:
        raise ValueError(f"task: expected one of {tuple(TASKS)}, got {task!r}")
    if not 1 <= num_envs <= 64:
        raise ValueError(f"num_envs: expected 1..64, got {num_envs}")
    if device != "auto" and device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device: expected auto, cpu or cuda[:i], got {device!r}")
    ns = check_namespace(namespace)
    shared = {topic: f"{ns}/{topic}" for topic in ("transition", "episode", "learner_progress")}
    server = {"task": task, "backend": backend, "model_dir": model_dir, "device": device,
              "selection": "sample", "candidates": "train"}     # the model's L: acting for training
    learner = node_plan("learner", ns or "/", {"task": task, "model_dir": model_dir, "device": device,
                                               "max_env_steps": env_steps, "eval_every": eval_every,
                                               "eval_episodes": eval_episodes, "validation_seed": validation_seed,
                                               "training_seeds": [i * SEEDS_PER_BRIDGE for i in range(num_envs)],
                                               **({"output_dir": output_dir} if output_dir else {})})
    if not use_sim:
        return [node_plan("policy_server", ns or "/", server, {"policy_update": f"{ns}/policy_update"}), learner]
    if mode == "fast":          # the simulation waits for each chunk (and for the learner): limits are for robots
        server = {**server, "max_decision_rate": 1000.0, "starved_after": 60.0}
    plan = []
    for i in range(num_envs):
        env_ns = f"{ns}/env{i}"
        plan.append(node_plan("sim_bridge", env_ns, {"task": task, "model_dir": model_dir,
                                                     "first_seed": i * SEEDS_PER_BRIDGE,
                                                     "source_id": i, "episodes": episodes, "mode": mode}, shared))
        plan.append(node_plan("policy_server", env_ns, server, {"policy_update": f"{ns}/policy_update"}))
    return plan + [learner]


# the launch arguments of finetune.launch.py and ``otpr-launch finetune`` (strings, as launch has them)
FINETUNE_ARGUMENTS = {
    "task": ("lift", "lift | can | square"),
    "num_envs": ("1", "simulation bridges, each with its policy server"),
    "device": ("auto", "auto (CUDA when present) | cpu | cuda[:i]"),
    "backend": ("torch", "torch | onnx | openvino"),
    "model_dir": ("", "empty: the shipped model of the task"),
    "use_sim": ("true", "false: a robot's drivers publish the state instead of bridges"),
    "namespace": ("otpr", "namespace of every node and topic"),
    "episodes": ("0", "each bridge stops after this many episodes; 0: never"),
    "mode": ("fast", "fast | realtime (the bridges' clock)"),
    "output_dir": ("", "the learner's snapshots and TensorBoard logs; empty: the config's"),
    "env_steps": ("0", "the learner stops after this many environment steps (final evaluation); 0: never"),
    "eval_every": ("0", "environment steps between the learner's held-out evaluations; 0: none"),
    "eval_episodes": ("50", "episodes per held-out evaluation"),
    "validation_seed": ("-1", "first seed of validation episodes run beside each held-out evaluation; the "
                              "weights they rate best are kept as <output_dir>/selected; -1: none"),
}
SERVE_ARGUMENTS = {
    "task": ("lift", "lift | can | square"),
    "backend": ("torch", "torch | onnx | openvino"),
    "model_dir": ("", "empty: the shipped model of the task"),
    "namespace": ("", "namespace of the robot's topics"),
    "start_enabled": ("false", "publish before an operator calls policy_server/enable"),
}


def flag(value: str, name: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value.lower() in ("true", "1")


def whole(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}: expected a whole number, got {value!r}") from None


def plan_from_arguments(kind: str, values: dict) -> list:
    """The plan of ``finetune`` or ``serve`` from launch-argument strings."""
    if kind == "serve":
        return serve_plan(values["task"], values["backend"], values["model_dir"], values["namespace"],
                          flag(values["start_enabled"], "start_enabled"))
    return finetune_plan(values["task"], whole(values["num_envs"], "num_envs"), values["device"],
                         values["backend"], values["model_dir"], flag(values["use_sim"], "use_sim"),
                         values["namespace"], whole(values["episodes"], "episodes"), values["mode"],
                         values["output_dir"], whole(values["env_steps"], "env_steps"),
                         whole(values["eval_every"], "eval_every"), whole(values["eval_episodes"], "eval_episodes"),
                         whole(values["validation_seed"], "validation_seed"))


def serve_plan(task: str = "lift", backend: str = "torch", model_dir: str = "", namespace: str = "",
               start_enabled: bool = False) -> list[NodePlan]:
    """The policy server alone, for real hardware (``serve.launch.py``)."""
    if task not in TASKS:
        raise ValueError(f"task: expected one of {tuple(TASKS)}, got {task!r}")
    return [node_plan("policy_server", check_namespace(namespace) or "/",
                      {"task": task, "backend": backend, "model_dir": model_dir, "start_enabled": start_enabled})]
