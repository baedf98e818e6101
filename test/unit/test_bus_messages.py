import numpy as np
import pytest

pytest.importorskip("std_msgs", reason="the ROS message wheels are not installed (the ros extra)")

from std_msgs.msg import String  # noqa: E402

from otpr_ros.nodes.bus_messages import (policy_update_fields, policy_update_message,  # noqa: E402
                                         transition_fields, transition_message)
from otpr_ros.sim.bridge_session import Transition  # noqa: E402


def make_transition(**changes):
    fields = dict(obs=np.arange(19, dtype=np.float64), action=np.linspace(-1, 1, 28).reshape(4, 7), reward=0.998,
                  next_obs=np.arange(19, dtype=np.float64) + 1, terminal=True, truncated=False, steps=3,
                  sequence=12345, episode=7)
    fields.update(changes)
    return Transition(**fields)


def test_transition_round_trip():
    msg = transition_message(make_transition(), source=2)
    assert [d.label for d in msg.layout.dim][:4] == ["obs", "action", "reward", "next_obs"]
    fields = transition_fields(msg, obs_dim=19, action_size=28)
    np.testing.assert_allclose(fields["action"], np.linspace(-1, 1, 28), atol=1e-6)
    np.testing.assert_allclose(fields["next_obs"], np.arange(19) + 1)
    assert (fields["reward"], fields["terminal"], fields["steps"], fields["sequence"], fields["source"]) == \
        (pytest.approx(0.998), 1.0, 3.0, 12345.0, 2.0)


def test_malformed_transitions_are_refused_by_name():
    msg = transition_message(make_transition(), source=0)
    with pytest.raises(ValueError, match="obs holds 19 values, expected 10"):
        transition_fields(msg, obs_dim=10)
    truncated = transition_message(make_transition(), source=0)
    truncated.data = list(truncated.data)[:-3]
    with pytest.raises(ValueError, match="does not fit"):
        transition_fields(truncated)
    renamed = transition_message(make_transition(), source=0)
    renamed.layout.dim[0].label = "state"
    with pytest.raises(ValueError, match="expected fields"):
        transition_fields(renamed)
    with pytest.raises(ValueError, match="NaN or Inf"):
        transition_fields(transition_message(make_transition(reward=np.nan), source=0))


def test_policy_update_announcement():
    from otpr_ros.model.update_auth import sign
    fields = policy_update_fields(policy_update_message("r1", 3, "/tmp/model", "ab" * 32))
    assert fields == {"run": "r1", "version": 3, "path": "/tmp/model", "weights_sha256": "ab" * 32, "signature": None}
    key = bytes(32)
    signed = policy_update_fields(policy_update_message("r1", 3, "/tmp/model", "ab" * 32, key))
    assert signed["signature"] == sign(key, fields)
    for bad in ("not json", '{"run": "r", "version": "3", "path": "/x", "weights_sha256": ""}', "[1, 2]",
                '{"version": 3, "path": "/x", "weights_sha256": ""}',
                '{"run": "r", "version": 3, "path": "/x", "weights_sha256": "", "signature": 5}'):
        with pytest.raises(ValueError, match="policy_update"):
            policy_update_fields(String(data=bad))


def test_learner_progress_round_trip_and_refusal():
    from otpr_ros.nodes.bus_messages import learner_progress_fields, learner_progress_message
    msg = learner_progress_message({(0, 123): 41, (1, 7): 3}, received=46, wanted=110, updates=30, version=2)
    fields = learner_progress_fields(msg)
    assert fields == {"acknowledged": {(0, 123): 41, (1, 7): 3}, "received": 46, "wanted": 110}
    assert learner_progress_fields(learner_progress_message({}, 0, None, 0, 0))["wanted"] is None
    with pytest.raises(ValueError, match="learner_progress: expected"):
        learner_progress_fields(String(data='{"acknowledged": [[0, 1]], "received": 3, "wanted": 4}'))
