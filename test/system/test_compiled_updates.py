"""``agent.compile_updates`` makes the updates faster, not different: from the same seed, the
compiled and the eager learner report the same losses, update after update (the random draws
stay outside the compiled parts, so both see the same batches, candidates and noise)."""

import pytest
import torch
from conftest import cuda_only
from unit.test_agent import filled_buffer, small_agent

UPDATES = 5
TOLERANCE = {"rel": 1e-4, "abs": 1e-6}     # measured: <= 2e-6 relative on Lift's model over 4 updates (CPU)


@pytest.mark.parametrize("device,mode", [("cpu", "default"), pytest.param("cuda", "default", marks=cuda_only()),
                                         pytest.param("cuda", "reduce-overhead", marks=cuda_only())])
@pytest.mark.parametrize("masked", [True, False])
def test_compiled_updates_report_the_losses_of_eager_ones(device, mode, masked):
    """``reduce-overhead`` (CUDA graphs of the compiled parts) too: a graph output read after
    its next replay would show here as a changed loss."""
    runs = {}
    for compiled in (False, True):
        agent = small_agent(device, **({} if masked else {"masked": False, "beta": 0.0}))
        buffer = filled_buffer(agent)
        agent.config.agent.actor_sampler, agent.config.agent.actor_ddim_steps = "ddim", 3
        agent.config.agent.compile_updates, agent.config.agent.compile_mode = compiled, mode
        runs[compiled] = [agent.update(buffer) for _ in range(UPDATES)]
        if device == "cuda":
            torch.cuda.synchronize()
    for eager, compiled in zip(runs[False], runs[True]):
        assert eager.keys() == compiled.keys()
        for name, value in eager.items():
            assert compiled[name] == pytest.approx(value, **TOLERANCE), name


def test_compiling_ahead_changes_no_update():
    """``compile_updates_now`` (the learner node compiles before it subscribes) runs one update
    and undoes it: the updates after it are those of an agent that did not warm up."""
    runs, weights = {}, {}
    for ahead in (False, True):
        agent = small_agent("cpu", masked=False, beta=0.0)
        buffer = filled_buffer(agent)
        agent.config.agent.actor_sampler, agent.config.agent.actor_ddim_steps = "ddim", 3
        assert agent.compile_updates_now(buffer) is None          # off: nothing runs
        agent.config.agent.compile_updates = True
        before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
        if ahead:
            assert agent.compile_updates_now(buffer) > 0
            assert all(torch.equal(v, before[k]) for k, v in agent.policy.state_dict().items())
            assert agent.updates == 0
        runs[ahead] = [agent.update(buffer) for _ in range(UPDATES)]
        weights[ahead] = agent.weights_state_dict()
    assert runs[True] == runs[False]
    for name in ("policy", "critic", "potentials"):
        for key, value in weights[False][name].items():
            assert torch.equal(weights[True][name][key], value), (name, key)
