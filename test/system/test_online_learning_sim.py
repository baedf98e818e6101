"""The online loop learns something measurable on the real simulation (MuJoCo)."""

import pytest

from otpr_ros.model.directory import load_model
from otpr_ros.training.online_learning import OnlineLearner


# The least rise each must show. Measured with this test's setting for three learner seeds
# (0, 1, 2; 2026-12-02): from the Lift model re-made that day (offline 96 %: little left to
# learn) 1.010 / 1.020 / 1.019 (single) and 1.082 / 1.037 / 1.034 (sample); from the model
# shipped before it (74 %) 1.091 / 1.081 / 1.055 and 1.119 / 1.120 / 1.091, when the test asked 1.03.
RISE = {"single": 1.005, "sample": 1.02}


def test_a_few_hundred_updates_on_lift_raise_the_compatibility_of_the_chosen_chunks(tmp_path):
    """The loop learns something measurable, not just runs: from the shipped Lift model, with
    scripted demonstrations and its own transitions from the real simulation, 200 updates
    raise the mean H of the chunks the policy picks for the same states and the same noise
    (both judged by the potentials as they are after the updates)."""
    pytest.importorskip("robosuite", reason="the simulation extra is not installed")
    from otpr_ros.model.policy import ChunkPolicy
    from otpr_ros.package_files import shipped_model
    from otpr_ros.sim.bridge_session import BridgeSession, make_environment
    from otpr_ros.tools.collect_demos import main as collect_demos
    from otpr_ros.training.online_learning import apply_overrides, expert_demonstrations

    demos = tmp_path / "lift.hdf5"
    assert collect_demos(["--task", "lift", "--episodes", "4", "--seed", "100", "--processes", "1",
                          "--output", str(demos)]) == 0
    model = load_model(shipped_model("lift"), "cpu")
    apply_overrides(model, ["agent.actor_batch=64", "agent.actor_sampler=ddim", "agent.actor_ddim_steps=5"])
    learner = OnlineLearner(model, expert_demonstrations(model, [str(demos)]))
    env, observe = make_environment("lift", None)
    session = BridgeSession(env, observe, model.config.critic.gamma, first_seed=500)
    policy = ChunkPolicy(model, "torch", "train", "sample", seed=0)
    session.reset()
    while learner.online_size < 100:
        learner.add(session.run_chunk(policy.decide).fields())
        if session.done:
            session.end_episode()
            session.reset()

    agent = model.agent
    states = learner.buffer.online.data["obs"][:learner.online_size].clone()

    def chosen(mode):                 # the same denoising noise and resampling draws each time
        agent.generator.manual_seed(123)
        return agent.act(states, mode=mode).chunk

    def mean_compatibility(chunks):
        h, _ = agent.candidate_weights(states, chunks[:, None, :])
        return float(h.mean())

    before = {mode: chosen(mode) for mode in ("single", "sample")}   # the policy alone; resampled over L
    for _ in range(200):
        learner.update()
    for mode, chunks in before.items():
        old, new = mean_compatibility(chunks), mean_compatibility(chosen(mode))
        assert new > RISE[mode] * old, f"{mode}: mean H of the chosen chunks {old:.3f} -> {new:.3f}"
