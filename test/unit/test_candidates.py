"""L, the number of candidates an acting path draws: one rule (``resolve_candidates``) with
named modes, for the policy server's ``candidates`` parameter and every ChunkPolicy."""

import pytest

from otpr_ros.core.config import OTPRConfig
from otpr_ros.model.policy import resolve_candidates


def config(eval_mode):
    return OTPRConfig.from_dict({"obs_dim": 19, "act_dim": 7, "agent": {"num_candidates": 8, "eval_mode": eval_mode}})


def test_named_modes_and_counts():
    assert resolve_candidates("eval", config("single")) == 1         # the paper's evaluation: the policy alone
    assert resolve_candidates("eval", config("argmax")) == 8         # arg-max of H over the model's L
    assert resolve_candidates("train", config("single")) == 8        # acting for training: the model's L
    assert resolve_candidates(3, config("single")) == 3 and resolve_candidates("12", config("single")) == 12


@pytest.mark.parametrize("bad", [0, -1, "0", 257, "all", None, 2.5, True])
def test_anything_else_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="candidates: expected one of"):
        resolve_candidates(bad, config("single"))
