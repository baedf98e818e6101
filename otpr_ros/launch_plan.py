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
On a robot (``use_sim`` false) the robot's drivers take the bridge's place: in ``<ns>`` a
server reads their topics (disabled until an episode starts) and a ``transition_recorder``
makes the learner's transitions from them and an operator's calls (docs/robot.md).
``mode`` robot rehearses that path in simulation: each ``<ns>/env<i>`` holds a bridge in robot
mode, its server, a recorder and a ``sim_operator`` that resets and confirms episodes.

Who may change the served policy (otpr_ros/model/update_auth.py): the learner signs its
``policy_update`` announcements with ``update_key`` (by default ``<output_dir>/update.key``,
made for the run by ``prepare``, kept when the run resumes) and the servers take only
announcements signed with it, of models inside ``model_roots`` (the shipped models, the
run's output directory, the model's own folder). In simulation the nodes' DDS discovery
stays on this machine (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) unless ``discovery``
says otherwise.
"""

from dataclasses import dataclass, field
from pathlib import Path

from otpr_ros.model.update_auth import create_key
from otpr_ros.package_files import node_parameters, share_dir
from otpr_ros.sim.evaluation import SEEDS_PER_BRIDGE, check_guided_candidates
from otpr_ros.sim.robomimic_env import TASKS
from otpr_ros.sim.tasks import SIM_TASKS, is_calvin, is_kitchen

DISCOVERY = {"localhost": "LOCALHOST", "subnet": "SUBNET"}


@dataclass
class NodePlan:
    executable: str               # console script in lib/otpr_ros
    module: str                   # the same entry point as ``python -m module``
    name: str
    namespace: str
    parameters: dict = field(default_factory=dict)        # on top of config/nodes.yaml, config/<task>.yaml
    remappings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)       # on top of the launcher's
    enclave: str = ""                                     # SROS2 security enclave (--enclave); empty: none

    @property
    def full_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


def node_plan(executable: str, namespace: str, parameters=None, remappings=None) -> NodePlan:
    return NodePlan(executable, f"otpr_ros.nodes.{executable}", executable, namespace, parameters or {},
                    remappings or {})


def prepare(plan: list[NodePlan]) -> list[str]:
    """What a launcher does before starting the plan: the run's update key made (once; a
    resumed run keeps its key). The plan's key files (none: unsigned); ValueError when an
    existing key file is unusable."""
    keys = sorted({node.parameters.get("update_key") for node in plan} - {None, ""})
    for key in keys:
        create_key(key)
    return keys


def discovery_environment(discovery: str, use_sim: bool) -> dict:
    """The nodes' ROS_AUTOMATIC_DISCOVERY_RANGE. ``discovery``: auto (localhost in simulation,
    the launcher's environment on a robot) | localhost | subnet | inherit (the environment's)."""
    if discovery not in ("auto", "inherit", *DISCOVERY):
        raise ValueError(f"discovery: expected auto, inherit, {', '.join(DISCOVERY)}, got {discovery!r}")
    if discovery == "auto":
        discovery = "localhost" if use_sim else "inherit"
    return {} if discovery == "inherit" else {"ROS_AUTOMATIC_DISCOVERY_RANGE": DISCOVERY[discovery]}


def update_security(task: str, model_dir: str, output_dir: str, update_key: str) -> tuple[dict, dict]:
    """The learner's and the servers' parameters for signed policy updates (module doc);
    ``update_key`` none: unsigned."""
    output = output_dir or node_parameters(task, "learner")["output_dir"]
    key = "" if update_key == "none" else update_key or str(Path(output) / "update.key")
    roots = [str(share_dir("models")), output, *([str(Path(model_dir).parent)] if model_dir else [])]
    return {"update_key": key}, {"update_key": key, "model_roots": roots}


def check_namespace(namespace: str) -> str:
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if not all(part.replace("_", "a").isalnum() and not part[0].isdigit() for part in namespace.split("/")[1:]):
        raise ValueError(f"namespace: expected names of letters, digits and _ (not starting with a digit), "
                         f"got {namespace!r}")
    return namespace


def finetune_plan(task: str = "lift", num_envs: int = 1, device: str = "auto", backend: str = "torch",
                  model_dir: str = "", use_sim: bool = True, namespace: str = "otpr",
                  episodes: int = 0, mode: str = "fast", output_dir: str = "", env_steps: int = 0,
                  eval_every: int = 0, eval_episodes: int = 50, validation_seed: int = -1, update_key: str = "",
                  discovery: str = "auto", enclaves: str = "", seed: int = 0,
                  keep_evaluated: bool = False, guided_candidates: int = 0) -> list[NodePlan]:
    if mode not in ("fast", "realtime", "robot"):
        raise ValueError(f"mode: expected fast, realtime or robot, got {mode!r}")
    if backend not in ("torch", "onnx", "openvino"):
        raise ValueError(f"backend: expected torch, onnx or openvino, got {backend!r}")
    if eval_episodes < 1:
        raise ValueError(f"eval_episodes: expected >= 1, got {eval_episodes}")
    if validation_seed < -1:
        raise ValueError(f"validation_seed: expected a seed >= 0, or -1 for none, got {validation_seed}")
    check_guided_candidates(guided_candidates)
    for name, number in (("episodes", episodes), ("env_steps", env_steps), ("eval_every", eval_every),
                         ("seed", seed)):
        if number < 0:
            raise ValueError(f"{name}: expected >= 0, got {number}")
    if task not in SIM_TASKS:
        raise ValueError(f"task: expected one of {tuple(SIM_TASKS)}, got {task!r}")
    if (is_kitchen(task) or is_calvin(task)) and (mode == "robot" or not use_sim):
        raise ValueError(f"task {task!r}: Franka Kitchen and CALVIN run in simulation only (use_sim true, mode fast "
                         f"or realtime): the robot path's recorder builds robomimic observations from poses")
    if not 1 <= num_envs <= 64:
        raise ValueError(f"num_envs: expected 1..64, got {num_envs}")
    if device != "auto" and device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device: expected auto, cpu or cuda[:i], got {device!r}")
    ns = check_namespace(namespace)
    environment = discovery_environment(discovery, use_sim)
    learner_security, server_security = update_security(task, model_dir, output_dir, update_key)
    shared = {topic: f"{ns}/{topic}" for topic in ("transition", "episode", "learner_progress")}
    server = {"task": task, "backend": backend, "model_dir": model_dir, "device": device,
              "selection": "sample", "candidates": "train", "seed": seed,
              **server_security}     # the model's L: acting for training
    learner = node_plan("learner", ns or "/", {"task": task, "model_dir": model_dir, "device": device, "seed": seed,
                                               **learner_security,
                                               "eval_every": eval_every,
                                               "eval_episodes": eval_episodes, "validation_seed": validation_seed,
                                               "keep_evaluated": keep_evaluated,
                                               "guided_candidates": guided_candidates,
                                               "training_seeds": [i * SEEDS_PER_BRIDGE for i in range(num_envs)],
                                               **({"output_dir": output_dir} if output_dir else {}),
                                               **({"max_env_steps": env_steps} if env_steps else {})})
    recorder = {"task": task, "model_dir": model_dir, "max_episode_steps": SIM_TASKS[task].horizon}
    recorded = {topic: shared[topic] for topic in ("transition", "learner_progress")}
    if not use_sim:
        plan = [node_plan("policy_server", ns or "/", {**server, "start_enabled": False},
                          {"policy_update": f"{ns}/policy_update"}),
                node_plan("transition_recorder", ns or "/", recorder, recorded), learner]
        return with_environment(plan, environment, enclaves)
    if mode != "realtime":      # the simulation waits for each chunk (and for the learner): limits are for robots
        server = {**server, "max_decision_rate": 1000.0, "starved_after": 60.0}
    plan = []
    for i in range(num_envs):
        env_ns = f"{ns}/env{i}"
        bridge = {"task": task, "model_dir": model_dir, "first_seed": i * SEEDS_PER_BRIDGE, "source_id": i,
                  "episodes": episodes, "mode": mode}
        if mode == "robot":         # what a robot shows; a recorder and an operator make the transitions
            plan += [node_plan("sim_bridge", env_ns, bridge),
                     node_plan("policy_server", env_ns, {**server, "start_enabled": False},
                               {"policy_update": f"{ns}/policy_update"}),
                     node_plan("transition_recorder", env_ns, {**recorder, "source_id": i}, recorded),
                     node_plan("sim_operator", env_ns)]
            continue
        plan.append(node_plan("sim_bridge", env_ns, bridge, shared))
        plan.append(node_plan("policy_server", env_ns, server, {"policy_update": f"{ns}/policy_update"}))
    return with_environment(plan + [learner], environment, enclaves)


def with_environment(plan: list[NodePlan], environment: dict, enclaves: str = "") -> list[NodePlan]:
    """``enclaves``: the root of the SROS2 enclaves; each node's is ``<enclaves>/<its full name>``."""
    if enclaves and not enclaves.startswith("/"):
        raise ValueError(f"enclaves: expected an absolute enclave path such as /otpr, got {enclaves!r}")
    for node in plan:
        node.environment.update(environment)
        node.enclave = f"{enclaves.rstrip('/')}{node.full_name}" if enclaves else ""
    return plan


# the launch arguments of finetune.launch.py and ``otpr-launch finetune`` (strings, as launch has them)
FINETUNE_ARGUMENTS = {
    "task": ("lift", "lift | can | square | kitchen_complete | kitchen_partial | kitchen_mixed | calvin_<task> "
                     "(Kitchen and CALVIN: simulation only)"),
    "num_envs": ("1", "simulation bridges, each with its policy server"),
    "device": ("auto", "auto (CUDA when present) | cpu | cuda[:i]"),
    "backend": ("torch", "torch | onnx | openvino"),
    "model_dir": ("", "empty: the shipped model of the task"),
    "use_sim": ("true", "false: a robot's drivers publish the state instead of bridges"),
    "namespace": ("otpr", "namespace of every node and topic"),
    "episodes": ("0", "each bridge stops after this many episodes; 0: never"),
    "mode": ("fast", "fast | realtime (the bridges' clock) | robot (the robot path in simulation: bridges show "
                     "only a robot's topics, recorders and an operator make the transitions)"),
    "output_dir": ("", "the learner's snapshots and TensorBoard logs; empty: the config's"),
    "env_steps": ("0", "the learner stops after this many environment steps (final evaluation); 0: the "
                        "config's budget (Can: 30 000, over which its actor's rate anneals), else never"),
    "eval_every": ("0", "environment steps between the learner's held-out evaluations; 0: none"),
    "eval_episodes": ("50", "episodes per held-out evaluation"),
    "keep_evaluated": ("false", "true: keep every evaluated snapshot under <output_dir>/evaluated (else the newest "
                                "and the final), e.g. to evaluate a curve's points on more episodes"),
    "guided_candidates": ("0", "L: each held-out evaluation also acts by the arg-max of the acting weights "
                                "over L candidates (their ranking put to the test: guided_success_rate); 0: none"),
    "validation_seed": ("-1", "first seed of validation episodes run beside each held-out evaluation; the "
                              "weights they rate best are kept as <output_dir>/selected; -1: none"),
    "update_key": ("", "key file signing the learner's policy updates (servers take only those); empty: "
                       "<output_dir>/update.key, made for the run; none: unsigned (anyone on the domain may "
                       "swap the policy)"),
    "discovery": ("auto", "DDS discovery range: auto (localhost in simulation, the environment's on a robot) | "
                          "localhost | subnet | inherit"),
    "enclaves": ("", "SROS2: root of the nodes' security enclaves, e.g. /otpr (a ROS installation with "
                     "ROS_SECURITY_ENABLE=true; docs/security.md); empty: none"),
    "seed": ("0", "seed of the learner's draws and the servers' sampling (otpr-finetune's --seed); the "
                  "episode seeds stay"),
}
SERVE_ARGUMENTS = {
    "task": ("lift", "lift | can | square"),
    "backend": ("torch", "torch | onnx | openvino"),
    "model_dir": ("", "empty: the shipped model of the task"),
    "namespace": ("", "namespace of the robot's topics"),
    "start_enabled": ("false", "publish before an operator calls policy_server/enable"),
    "update_key": ("", "key file policy updates must be signed with (otpr-keygen; the learner's); empty: "
                       "any participant on the domain may swap the policy (the server warns)"),
    "model_roots": ("", "comma-separated folders served models must lie in (add the learner's output_dir); "
                        "empty: the shipped models and the folder of model_dir"),
    "enclaves": ("", "SROS2: root of the server's security enclave, e.g. /otpr (docs/security.md); empty: none"),
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
                          flag(values["start_enabled"], "start_enabled"), values["update_key"],
                          [r.strip() for r in values["model_roots"].split(",") if r.strip()], values["enclaves"])
    return finetune_plan(values["task"], whole(values["num_envs"], "num_envs"), values["device"],
                         values["backend"], values["model_dir"], flag(values["use_sim"], "use_sim"),
                         values["namespace"], whole(values["episodes"], "episodes"), values["mode"],
                         values["output_dir"], whole(values["env_steps"], "env_steps"),
                         whole(values["eval_every"], "eval_every"), whole(values["eval_episodes"], "eval_episodes"),
                         whole(values["validation_seed"], "validation_seed"), values["update_key"],
                         values["discovery"], values["enclaves"], whole(values["seed"], "seed"),
                         flag(values["keep_evaluated"], "keep_evaluated"),
                         whole(values["guided_candidates"], "guided_candidates"))


def serve_plan(task: str = "lift", backend: str = "torch", model_dir: str = "", namespace: str = "",
               start_enabled: bool = False, update_key: str = "", model_roots=(), enclaves: str = "") -> list[NodePlan]:
    """The policy server alone, for real hardware (``serve.launch.py``)."""
    if task not in TASKS:
        raise ValueError(f"task: expected one of {tuple(TASKS)}, got {task!r}")
    roots = {"model_roots": list(model_roots)} if model_roots else {}
    return with_environment([node_plan("policy_server", check_namespace(namespace) or "/", {
        "task": task, "backend": backend, "model_dir": model_dir, "start_enabled": start_enabled,
        "update_key": update_key, **roots})], {}, enclaves)
