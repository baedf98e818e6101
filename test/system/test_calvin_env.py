"""CALVIN on calvin_env (PyBullet, scene D): the environment, its start states and bounds, the
scripted experts, demonstrations and a model through the package's tools. The parts that need
calvin_env run where it is installed (`make setup` installs it from ../shared/vendor/calvin_env)."""

import importlib.util

import numpy as np
import pytest

from otpr_ros.sim.calvin_env import (INSTALL_HINT, MAX_CHAIN, NEUTRAL_ROBOT_OBS, STEP_POSITION, TURN_LIMIT, WORKSPACE,
                                     CalvinEnv, TaskChain, bounded_action, chain_conditions, draw_chain, flatten_obs,
                                     start_state, task_id, to_calvin_action)

HAS_CALVIN = importlib.util.find_spec("calvin_env") is not None
needs_calvin = pytest.mark.skipif(not HAS_CALVIN, reason="calvin_env is not installed (not on PyPI; `make setup` "
                                                         "installs it from ../shared/vendor/calvin_env)")


def test_observation_is_robot_then_scene_state():
    robot, scene = np.arange(15, dtype=np.float64), 100 + np.arange(24, dtype=np.float64)
    flat = flatten_obs({"robot_obs": robot, "scene_obs": scene, "rgb_obs": {}})
    assert flat.dtype == np.float32 and flat.shape == (39,)
    assert np.array_equal(flat[:15], robot) and np.array_equal(flat[15:], scene)
    with pytest.raises(ValueError, match="scene_obs has 23 values, expected 24"):
        flatten_obs({"robot_obs": robot, "scene_obs": scene[:23]})
    with pytest.raises(ValueError, match="'robot_obs' missing"):
        flatten_obs({"scene_obs": scene})


def test_a_multi_task_observation_ends_with_the_instruction_one_hot():
    vocabulary = ("open_drawer", "turn_on_led", "move_slider_left")
    robot, scene = np.arange(15, dtype=np.float64), 100 + np.arange(24, dtype=np.float64)
    flat = flatten_obs({"robot_obs": robot, "scene_obs": scene, "task_id": task_id("turn_on_led", vocabulary)},
                       vocabulary)
    assert flat.shape == (42,) and np.array_equal(flat[39:], [0, 1, 0]) and np.array_equal(flat[15:39], scene)
    with pytest.raises(ValueError, match="'close_drawer' is not one of the instructions"):
        task_id("close_drawer", vocabulary)
    with pytest.raises(ValueError, match="'task_id' missing"):
        flatten_obs({"robot_obs": robot, "scene_obs": scene}, vocabulary)


def test_action_is_clipped_and_the_gripper_binary():
    action = to_calvin_action([2.0, -0.5, 0.1, -3.0, 0.0, 0.2, -0.01])
    assert np.array_equal(action, [1.0, -0.5, 0.1, -1.0, 0.0, 0.2, -1.0])
    assert to_calvin_action(np.zeros(7))[6] == 1.0
    with pytest.raises(ValueError, match="expected shape"):
        to_calvin_action(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        to_calvin_action([0, 0, 0, 0, 0, np.inf, 1])


def test_the_tcp_target_stays_in_the_workspace_and_near_the_start_orientation():
    start = NEUTRAL_ROBOT_OBS[3:6]
    edge = WORKSPACE[1] - [0.01, 0.0, 0.005]
    bounded = bounded_action(np.array([1.0, 1.0, -1.0, 1.0, 0.0, -1.0, 1.0]), edge, start + [TURN_LIMIT[0], 0, 0],
                             start)
    assert np.allclose(edge + STEP_POSITION * bounded[:3], [WORKSPACE[1][0], WORKSPACE[1][1], edge[2] - STEP_POSITION])
    assert bounded[3] == 0.0 and bounded[5] == -1.0 and bounded[6] == 1.0     # at the roll limit; yaw free
    inside = np.array([0.3, -0.2, 0.1, 0.2, -0.4, 0.5, -1.0])
    assert np.allclose(bounded_action(inside, NEUTRAL_ROBOT_OBS[:3], start, start), inside)


def test_start_states_give_each_chain_what_it_needs_and_follow_the_seed():
    for seed in range(20):
        _, scene = start_state(["open_drawer", "turn_on_led", "move_slider_right"], np.random.default_rng(seed))
        assert scene[1] == 0.0 and scene[5] == 0.0 and scene[0] == 0.28      # drawer closed, led off, slider left
        assert (scene[3] == 0.088) == (scene[4] == 1.0)                       # the switch says the lightbulb
    a, b = (start_state(["open_drawer"], np.random.default_rng(7))[1] for _ in range(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, start_state(["open_drawer"], np.random.default_rng(8))[1])
    assert chain_conditions(["open_drawer", "close_drawer", "open_drawer"]) == {"drawer": "closed"}
    with pytest.raises(ValueError, match="open_drawer needs the drawer closed, but the chain before it leaves it open"):
        chain_conditions(["turn_on_led", "open_drawer", "open_drawer"])


def test_task_chain_rewards_tasks_in_order():
    chain = TaskChain(["open_drawer", "turn_on_lightbulb"])
    assert chain.update({"turn_on_lightbulb"}) == 0.0      # not the current task yet
    assert chain.update({"open_drawer", "move_slider_left"}) == 1.0
    assert chain.current == "turn_on_lightbulb" and not chain.done
    assert chain.update(set()) == 0.0
    assert chain.update({"turn_on_lightbulb"}) == 1.0 and chain.done
    assert chain.update({"open_drawer"}) == 0.0            # nothing after the chain ends
    chain.reset()
    assert chain.current == "open_drawer"
    with pytest.raises(ValueError, match="tasks"):
        TaskChain([])


@pytest.mark.skipif(HAS_CALVIN, reason="calvin_env is installed here")
def test_missing_calvin_env_says_how_to_install():
    with pytest.raises(ModuleNotFoundError) as error:
        CalvinEnv()
    assert str(error.value) == INSTALL_HINT and "git clone" in INSTALL_HINT


@needs_calvin
def test_bad_chains_and_tasks_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown to calvin_env: \['open_the_fridge'\]"):
        CalvinEnv(["open_the_fridge"])
    with pytest.raises(ValueError, match=f"at most {MAX_CHAIN} instructions, got 6"):
        CalvinEnv(["turn_on_led", "turn_off_led"] * 3)
    with pytest.raises(ValueError, match="move_slider_left needs the slider right"):
        CalvinEnv(["move_slider_left", "move_slider_left"])


@needs_calvin
def test_calvin_env_resets_to_seeded_scenes_and_steps():
    env = CalvinEnv(["open_drawer"], horizon=5)
    try:
        obs, info = env.reset(seed=3)
        assert obs.shape == (39,) and info == {"success": False, "tasks_completed": 0}
        robot, scene = start_state(["open_drawer"], np.random.default_rng(3))
        assert np.allclose(obs[:3], robot[:3], atol=0.01)          # the neutral tcp
        assert np.allclose(obs[15:21], scene[:6], atol=0.01)       # the articulated parts as drawn
        assert np.allclose(env.reset(seed=3)[0], obs, atol=1e-4)
        flags = [env.step(np.zeros(7))[3] for _ in range(5)]
        assert flags == [False] * 4 + [True]
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(7))
    finally:
        env.close()
    # CALVIN ends a chain when an instruction is not done in its steps, whatever the chain's horizon
    env = CalvinEnv(["open_drawer", "turn_on_led"], horizon=20, instruction_horizon=3)
    try:
        env.reset(seed=3)
        assert [env.step(np.zeros(7))[3] for _ in range(3)] == [False, False, True]
    finally:
        env.close()


@needs_calvin
@pytest.mark.parametrize("task", ["move_slider_left", "move_slider_right", "open_drawer", "close_drawer",
                                  "turn_on_led", "turn_off_led", "turn_on_lightbulb"])
def test_each_scripted_expert_does_its_task_as_the_oracle_judges(task):
    from otpr_ros.sim.calvin_experts import CalvinExpert
    env = CalvinEnv([task])
    try:
        for seed in (0, 1):
            env.reset(seed=seed)
            expert, rewards = CalvinExpert(env, noise=0.1, rng=np.random.default_rng(seed)), []
            for _ in range(env.horizon):
                _, reward, terminated, truncated, info = env.step(expert.act())
                rewards.append(reward)
                if terminated or truncated:
                    break
            assert terminated and info["success"] and sum(rewards) == 1.0, (task, seed, env.elapsed)
    finally:
        env.close()


@needs_calvin
def test_a_chain_of_five_tasks_is_done_one_after_the_other():
    """CALVIN's long-horizon protocol: five instructions, each judged from where the one before
    ended (the hand rises between them: hooked behind the drawer's bar it would close it again)."""
    from otpr_ros.sim.calvin_experts import CalvinExpert
    chain = ["open_drawer", "turn_on_led", "move_slider_left", "turn_on_lightbulb", "close_drawer"]
    env = CalvinEnv(chain, horizon=360 * 5)
    try:
        env.reset(seed=0)
        expert, completed = CalvinExpert(env, noise=0.1, rng=np.random.default_rng(0)), []
        for _ in range(env.horizon):
            _, _, terminated, truncated, info = env.step(expert.act())
            completed.append(info["tasks_completed"])
            if terminated or truncated:
                break
        assert terminated and sorted(set(completed)) == [0, 1, 2, 3, 4, 5], sorted(set(completed))
    finally:
        env.close()


@needs_calvin
def test_the_multi_task_environment_draws_each_episodes_task_from_the_seed_and_says_it():
    """calvin_multi: one of the scripted tasks per episode, drawn from the seed, its one-hot
    after robot_obs and scene_obs; the expert does whichever it is; a chain can be given."""
    from otpr_ros.sim.calvin_experts import SCRIPTED, CalvinExpert
    from otpr_ros.sim.tasks import make_env, sim_task
    env = make_env("calvin_multi")
    try:
        assert sim_task("calvin_multi").obs_dim == env.observation_space.shape[0] == 39 + len(SCRIPTED)
        drawn = {}
        for seed in range(12):
            obs, _ = env.reset(seed=seed)
            (task,) = env.chain.tasks
            drawn[seed] = task
            assert np.array_equal(obs[39:], task_id(task, SCRIPTED)), (seed, task)
        assert len(set(drawn.values())) >= 4
        obs, _ = env.reset(seed=5)
        assert env.chain.tasks == (drawn[5],)
        expert = CalvinExpert(env, noise=0.1, rng=np.random.default_rng(5))
        while True:
            obs, reward, terminated, truncated, info = env.step(expert.act())
            if terminated or truncated:
                break
        assert terminated and reward == 1.0 and np.array_equal(obs[39:], task_id(drawn[5], SCRIPTED))
        assert set(env.stored_observation()) == {"robot_obs", "scene_obs", "task_id"}
        obs, _ = env.reset(seed=5, options={"tasks": ["open_drawer", "turn_on_led"]})
        assert env.chain.tasks == ("open_drawer", "turn_on_led") and obs[39 + SCRIPTED.index("open_drawer")] == 1
        with pytest.raises(ValueError, match="expected at most 5 of"):
            env.reset(seed=5, options={"tasks": ["stack_block"]})
    finally:
        env.close()


def test_drawn_chains_are_feasible_and_follow_the_seed():
    from otpr_ros.sim.calvin_experts import SCRIPTED
    chains = [draw_chain(SCRIPTED, MAX_CHAIN, np.random.default_rng(seed)) for seed in range(30)]
    assert all(len(set(c)) == MAX_CHAIN and chain_conditions(c) is not None for c in chains)
    assert len(set(chains)) > 20 and chains[3] == draw_chain(SCRIPTED, MAX_CHAIN, np.random.default_rng(3))
    with pytest.raises(ValueError, match="length: expected 1..2"):
        draw_chain(["open_drawer", "close_drawer"], 3, np.random.default_rng(0))


@needs_calvin
def test_demonstrations_and_a_model_through_the_packages_tools(tmp_path):
    """collect-demos writes the robomimic layout (robot_obs, scene_obs), it reloads through the
    loader, and otpr-pretrain / otpr-evaluate run on it."""
    from model_fixtures import make_tiny_calvin_model
    from otpr_ros.data.robomimic_hdf5 import RobomimicDataset
    from otpr_ros.sim.tasks import sim_task
    model, demos = make_tiny_calvin_model(tmp_path)
    data = RobomimicDataset(demos, obs_keys=sim_task("calvin_open_drawer").obs_keys)
    assert data.obs_dim == 39 and len(data.demos) == 3 and sum(d.rewards.sum() for d in data.demos) == 3.0
    first = data.demos[0]
    assert np.allclose(first.next_obs[:-1], first.obs[1:])          # the episode's own steps, in order
    assert (model / "MODEL_CARD.md").is_file() and "calvin_open_drawer" in (model / "MODEL_CARD.md").read_text()


@needs_calvin
def test_a_multi_task_model_is_evaluated_on_chains_of_instructions(tmp_path, capsys):
    """otpr-evaluate --chain: each episode a chain drawn from its seed, the instructions and how
    many were done in a row recorded, CALVIN's long-horizon metric printed."""
    import json

    from model_fixtures import make_tiny_calvin_model
    from otpr_ros.sim.calvin_experts import SCRIPTED
    from otpr_ros.tools.evaluate import main as evaluate_main
    model, _ = make_tiny_calvin_model(tmp_path, task="calvin_multi")
    output = tmp_path / "chains.json"
    assert evaluate_main(["--model", str(model), "--episodes", "2", "--chain", "3", "--horizon", "6",
                          "--processes", "1", "--seed", "4", "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["chain"] == 3 and result["task"] == "calvin_multi"
    for record in result["episodes_detail"]:
        assert len(record["tasks"]) == 3 and 0 <= record["tasks_completed"] <= 3 and record["length"] <= 18
        assert record["tasks"] == list(draw_chain(SCRIPTED, 3, np.random.default_rng(record["seed"])))
    assert "chains of 3, instructions done in a row: 1:" in capsys.readouterr().out
