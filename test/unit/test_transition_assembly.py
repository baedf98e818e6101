"""The recorder's bookkeeping (otpr_ros/robot/transition_assembly.py): from a robot's states,
chunks and per-step rewards, in whatever order they arrive, the same transitions as the sim
bridge's own (otpr_ros/sim/bridge_session.py) for the same episode; bad input refused and
counted, nothing invented."""

import random

import numpy as np
import pytest

from otpr_ros.robot.transition_assembly import TransitionAssembler
from otpr_ros.sim.bridge_session import BridgeSession

OBS, ACT, CHUNK, GAMMA = 5, 3, 4, 0.99


class Walk:
    """A deterministic stand-in world for the bookkeeping alone: the state moves by the action,
    success when the first coordinate passes 1 (or never), truncated at the horizon."""

    class Space:
        shape = (ACT,)

    action_space = Space()

    def __init__(self, horizon: int, succeed: bool):
        self.horizon, self.succeed = horizon, succeed

    def reset(self, seed=None):
        self.state, self.t = np.random.default_rng(seed).normal(size=OBS) * 0.1, 0
        return self.state.copy(), {}

    def step(self, action):
        self.t += 1
        self.state = self.state + 0.01 + np.resize(action, OBS) * 0.01
        success = self.succeed and self.state[0] > 0.15
        truncated = not success and self.t >= self.horizon
        return self.state.copy(), float(success), success, truncated, {"success": success}


def robot_episode(horizon, succeed, seed=0, commanded_steps=0):
    """The bridge's transitions for one episode, and the events a robot shows on the bus meanwhile:
    ("state", stamp, obs) before each chunk and after the last, ("chunk", stamp, actions),
    ("reward", value) per step. The first ``commanded_steps`` steps a person commands (a state,
    ("command", stamp, action) and the reward per step); each full chunk of them is an
    (observation, actions) pair in the transitions."""
    session = BridgeSession(Walk(horizon, succeed), None, GAMMA, first_seed=seed)
    session.reset()
    rng = np.random.default_rng(seed)
    events, transitions, stamp = [], [], 1000
    for i in range(commanded_steps):
        stamp += 50
        obs, action = session.observation(), rng.uniform(-1, 1, size=ACT)
        if i % CHUNK == 0:
            first, actions = obs, []
        actions.append(action)
        events += [("state", stamp, obs), ("command", stamp, action)]
        session.start_chunk(action[None], obs)
        events.append(("reward", session.step()))
        session.finish_chunk()
        if len(actions) == CHUNK:
            transitions.append((first, np.stack(actions)))
    while not session.done:
        stamp += 50
        obs = session.observation()
        actions = rng.uniform(-1, 1, size=(CHUNK, ACT))
        events += [("state", stamp, obs), ("chunk", stamp, actions)]
        session.start_chunk(actions, obs)
        while session.executing:
            events.append(("reward", session.step()))
        transitions.append(session.finish_chunk())
    events.append(("state", stamp + 50, session.observation()))          # the robot's state after the end
    return transitions, events


def feed(assembler, events, start_stamp=1000):
    assert assembler.start(start_stamp, now=0.0) is None
    return feed_rest(assembler, events)


def assert_same(recorded, expected, sequences=True):
    assert len(recorded) == len(expected)
    for mine, theirs in zip(recorded, expected):
        for name in ("obs", "action", "next_obs"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name), err_msg=name)
        assert mine.reward == pytest.approx(theirs.reward, abs=1e-12)
        assert (mine.terminal, mine.truncated, mine.steps) == (theirs.terminal, theirs.truncated, theirs.steps)
        assert mine.sequence == theirs.sequence or not sequences


@pytest.mark.parametrize("succeed", [True, False])
def test_in_order_events_give_the_bridges_transitions(succeed):
    expected, events = robot_episode(horizon=30, succeed=succeed)
    assert expected[-1].terminal == succeed and expected[-1].truncated != succeed
    assert 0 < expected[-1].steps, "the episode must end inside a chunk for this test to mean something"
    recorded, episodes = feed(TransitionAssembler(GAMMA, OBS, ACT, max_episode_steps=30), events)
    assert_same(recorded, expected)
    assert episodes == [{"episode": 0, "return": float(succeed), "success": succeed,
                         "length": sum(t.steps for t in expected), "truncated": not succeed,
                         "reason": "success" if succeed else "timeout", "transitions": len(expected)}]


def test_an_episode_that_ends_mid_chunk():
    expected, events = robot_episode(horizon=30, succeed=True)
    assert expected[-1].steps < CHUNK and expected[-1].reward == pytest.approx(GAMMA ** (expected[-1].steps - 1))


@pytest.mark.parametrize("seed", range(20))
def test_any_arrival_order_across_topics_gives_the_same_transitions(seed):
    """Each topic keeps its own order (one publisher, reliable); between topics, anything goes."""
    expected, events = robot_episode(horizon=30, succeed=seed % 2 == 0, seed=seed)
    shuffled = random.Random(seed)
    queues = {kind: [e for e in events if e[0] == kind] for kind in ("state", "chunk", "reward")}
    mixed = []
    while any(queues.values()):
        kind = shuffled.choice([k for k, q in queues.items() if q])
        mixed.append(queues[kind].pop(0))
    recorded, _ = feed(TransitionAssembler(GAMMA, OBS, ACT, max_episode_steps=30), mixed)
    assert_same(recorded, expected)


def test_a_repeated_request_is_not_a_chunk():
    """A robot that sent its state again (new stamp, same state) while it waited gets two chunks
    and executes one: the second is refused and the transitions are unchanged."""
    expected, events = robot_episode(horizon=30, succeed=True)
    state, chunk = events[0], events[1]
    repeat = [("state", state[1] + 10, state[2]), ("chunk", state[1] + 10, chunk[2] + 0.5)]
    assembler = TransitionAssembler(GAMMA, OBS, ACT, max_episode_steps=30)
    assembler.start(1000, 0.0)
    for event in events[:2] + repeat:
        if event[0] == "state":
            assembler.add_state(event[1], event[2])
        else:
            assembler.add_chunk(event[1], event[2], 0.0)
    assert assembler.refused["repeated_state"] == 1
    recorded, _ = feed_rest(assembler, events[2:])
    assert_same(recorded, expected)


def feed_rest(assembler, events):
    """Every event to the assembler, in order; what it completed."""
    for event in events:
        if event[0] == "state":
            assembler.add_state(event[1], event[2])
        elif event[0] == "chunk":
            assembler.add_chunk(event[1], event[2], now=0.0)
        elif event[0] == "command":
            assembler.add_command(event[1], event[2], now=0.0)
        else:
            assembler.add_reward(event[1], now=0.0)
    return assembler.take()


def test_bad_input_is_refused_and_counted():
    assembler = TransitionAssembler(GAMMA, OBS, ACT)
    assert assembler.add_reward(1.0, 0.0) == "no_episode"                      # a reward for no episode
    assert assembler.add_chunk(2000, np.zeros((CHUNK, ACT)), 0.0) == "no_episode"
    assert "no episode" in assembler.report("success", 0.0)
    assembler.start(1000, 0.0)
    assert assembler.start(1100, 0.0) is not None                              # one episode at a time
    assert assembler.add_chunk(900, np.zeros((CHUNK, ACT)), 0.0) == "before_episode"
    assert assembler.add_chunk(2000, np.zeros((CHUNK, ACT + 1)), 0.0) == "malformed"
    assert assembler.add_chunk(2000, np.full((CHUNK, ACT), np.nan), 0.0) == "malformed"
    assert assembler.add_reward(float("nan"), 0.0) == "malformed"
    assembler.add_state(2000, np.zeros(OBS))
    assert assembler.add_chunk(2000, np.zeros((CHUNK, ACT)), 0.0) is None
    assert assembler.add_chunk(2000, np.zeros((CHUNK, ACT)), 0.0) == "out_of_order"
    assembler.add_reward(0.0, 0.0)
    assert assembler.add_reward(1.0, 0.0) is None                              # the detector: a success
    assert "already ended" in assembler.report("success", 0.0)                 # a success twice
    assert assembler.refused["ended_twice"] == 1
    with pytest.raises(ValueError, match="outcome"):
        assembler.report("lost", 0.0)


def test_a_state_that_never_comes_loses_the_episode_and_invents_nothing():
    expected, events = robot_episode(horizon=30, succeed=True)
    chunk_stamps = [e[1] for e in events if e[0] == "chunk"]
    gone = chunk_stamps[2]                                     # the third chunk's state is lost
    assembler = TransitionAssembler(GAMMA, OBS, ACT, max_episode_steps=30, wait_timeout=5.0)
    kept = [e for e in events if not (e[0] == "state" and e[1] == gone)]
    assembler.start(1000, 0.0)
    recorded, episodes = feed_rest(assembler, kept)
    assembler.expire(now=1.0)
    assert assembler.take() == ([], [])
    assert len(recorded) == 1 and not episodes, "only the first chunk is complete (the second needs the lost state)"
    assembler.expire(now=10.0)
    recorded, episodes = assembler.take()
    assert recorded == [] and episodes[0]["reason"] == "lost" and episodes[0]["transitions"] == 1
    assert assembler.refused["no_state"] == 1
    assert assembler.add_chunk(9999, np.zeros((CHUNK, ACT)), 10.0) == "no_episode"


def test_without_per_step_rewards_chunks_count_whole_and_success_is_reported():
    assembler = TransitionAssembler(GAMMA, OBS, ACT, step_source="chunk")
    assembler.start(1000, 0.0)
    states = [np.full(OBS, i, dtype=float) for i in range(4)]
    for i in range(3):
        assembler.add_state(2000 + i, states[i])
        assert assembler.add_chunk(2000 + i, np.zeros((CHUNK, ACT)), 0.0) is None
    assert assembler.report("success", 0.0) is None
    assembler.add_state(2003, states[3])
    recorded, episodes = assembler.take()
    assert [t.steps for t in recorded] == [CHUNK] * 3
    assert [t.reward for t in recorded] == [0.0, 0.0, pytest.approx(GAMMA ** (CHUNK - 1))]
    assert [t.terminal for t in recorded] == [False, False, True]
    np.testing.assert_array_equal(recorded[-1].next_obs, states[3])
    assert episodes[0]["success"] and episodes[0]["length"] == 3 * CHUNK


def test_an_operator_stop_truncates_and_sequences_go_on_across_episodes():
    assembler = TransitionAssembler(GAMMA, OBS, ACT)
    for episode in range(2):
        assembler.start(1000 + 100 * episode, 0.0)
        base = 1000 + 100 * episode
        assembler.add_state(base + 1, np.full(OBS, episode + 0.1))
        assembler.add_chunk(base + 1, np.zeros((CHUNK, ACT)), 0.0)
        for _ in range(2):
            assembler.add_reward(0.0, 0.0)
        assert assembler.report("stopped", 0.0) is None
        assembler.add_state(base + 2, np.full(OBS, episode + 0.2))
        recorded, episodes = assembler.take()
        assert [(t.sequence, t.episode, t.steps, t.truncated, t.terminal) for t in recorded] == \
            [(episode, episode, 2, True, False)]
        assert episodes[0]["reason"] == "stopped" and episodes[0]["truncated"]
        assert assembler.add_reward(0.0, 0.0) == "no_episode"


@pytest.mark.parametrize("extra", [0, 2])
def test_a_persons_commands_become_expert_chunks(extra):
    transitions, events = robot_episode(40, succeed=False, seed=3, commanded_steps=2 * CHUNK + extra)
    assembler = TransitionAssembler(GAMMA, OBS, ACT, max_episode_steps=40, chunk=CHUNK)
    assembler.start(1000, 0.0)
    for event in events:
        if event[0] == "command":
            assert assembler.add_command(event[1], event[2], 0.0) is None
    assert assembler.take() == ([], [])          # nothing without states and rewards
    assembler = TransitionAssembler(GAMMA, OBS, ACT, max_episode_steps=40, chunk=CHUNK)
    recorded, episodes = feed(assembler, events)
    experts = [t for t in recorded if t.expert]
    assert len(experts) == 2 and all(not t.expert for t in recorded[2:])
    for mine, (obs, actions) in zip(experts, transitions[:2]):
        np.testing.assert_array_equal(mine.obs, obs)
        np.testing.assert_array_equal(mine.action, actions)
        assert mine.steps == CHUNK
    assert_same(recorded[2:], transitions[2:], sequences=False)   # the policy's chunks after, as the bridge has them
    assert [t.sequence for t in recorded] == list(range(len(recorded)))
    assert assembler.refused["partial_intervention"] == (1 if extra else 0)
    assert episodes[0]["length"] == 40 and episodes[0]["transitions"] == len(recorded)


def test_an_intervention_without_its_state_is_not_learned_and_loses_the_episode():
    """A person's commands whose state never comes: no expert transition is invented from them
    (nor the one before, whose next observation it is); after ``wait_timeout`` the episode is
    lost."""
    _, events = robot_episode(40, succeed=False, seed=3, commanded_steps=2 * CHUNK)
    commands = [e[1] for e in events if e[0] == "command"]
    gone = commands[CHUNK]                                   # the state of the second expert chunk
    assembler = TransitionAssembler(GAMMA, OBS, ACT, max_episode_steps=40, wait_timeout=5.0, chunk=CHUNK)
    recorded, episodes = feed(assembler, [e for e in events if not (e[0] == "state" and e[1] == gone)])
    assert recorded == [] and not episodes
    assembler.expire(now=10.0)
    recorded, episodes = assembler.take()
    assert recorded == [] and episodes[0]["reason"] == "lost" and episodes[0]["transitions"] == 0
    assert assembler.refused["no_state"] == 1
