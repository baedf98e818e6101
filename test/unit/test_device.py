import pytest
import torch

from conftest import cuda_only
from otpr_ros.core.device import resolve_device


def test_auto_picks_what_is_there():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_device_names_are_refused():
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@cuda_only()
@pytest.mark.gpu
def test_agent_acts_and_learns_on_cuda():
    from test_agent import small_agent, filled_buffer
    agent = small_agent(device="cuda")
    buffer = filled_buffer(agent)
    metrics = agent.update(buffer)
    decision = agent.act(torch.zeros(3, agent.config.obs_dim, device="cuda"))
    assert decision.chunk.device.type == "cuda" and all(map(lambda v: v == v, metrics.values()))
