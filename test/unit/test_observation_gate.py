import numpy as np
import pytest

from otpr_ros.model.observation_gate import ObservationGate


def test_each_reason():
    gate = ObservationGate(3, max_obs_age=0.5)
    good = np.zeros(3)
    assert gate.check(good, [10.0, 9.9], now=10.1) is None
    assert gate.check(np.zeros(4), [10.2], now=10.3) == "wrong_size"
    assert gate.check(np.array([0.0, np.nan, 0.0]), [10.2], now=10.3) == "non_finite"
    assert gate.check(good, [10.2, 9.0], now=10.3) == "stale"              # the oldest message counts
    assert gate.check(good, [13.0, 10.2], now=10.3) == "future_stamp"      # so does the newest
    assert gate.check(good, [10.0], now=10.3) == "out_of_order"            # not newer than the last acted on
    assert gate.check(good, [10.25], now=10.3) is None
    assert gate.accepted == 2
    assert {k: v for k, v in gate.refused.items() if v} == {"wrong_size": 1, "non_finite": 1, "stale": 1,
                                                             "future_stamp": 1, "out_of_order": 1}
    with pytest.raises(ValueError, match="max_obs_age"):
        ObservationGate(3, max_obs_age=0.0)


def test_a_state_from_before_the_server_was_enabled_is_refused():
    gate = ObservationGate(3, max_obs_age=0.5)
    gate.not_before = 10.0                  # the server was enabled at 10.0 s
    assert gate.check(np.zeros(3), [9.99], now=10.05) == "before_enable"     # fresh, yet from before
    assert gate.check(np.zeros(3), [10.01, 9.99], now=10.05) == "before_enable"  # any of its messages
    assert gate.check(np.zeros(3), [10.0, 10.01], now=10.05) is None
    assert gate.refused["before_enable"] == 2 and gate.accepted == 1


def test_implausible_observations_are_refused():
    gate = ObservationGate(2, max_obs_age=0.5, low=[-1.0, 0.0], high=[1.0, 2.0])
    assert gate.check(np.array([0.5, 1.0]), [10.0], now=10.1) is None
    assert gate.check(np.array([1e6, 1.0]), [10.05], now=10.1) == "out_of_range"
    assert gate.check(np.array([0.0, -0.1]), [10.06], now=10.1) == "out_of_range"
    assert gate.refused["out_of_range"] == 2 and gate.accepted == 1
    assert gate.out_of_range == "component 1 = -0.1 outside [0, 2]"      # what a log names for a person
