import numpy as np
import pytest

from otpr_ros.model.decision import select


def test_argmax_and_fallback():
    weights = np.array([[0.1, 0.7, 0.2], [0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])
    score = np.array([[0.0, 0.0, 9.0], [1.0, 3.0, 2.0], [5.0, 1.0, np.nan]])
    assert select(weights, score, "argmax", np.zeros(3)).tolist() == [1, 1, 0]


def test_sampling_follows_the_weights():
    weights = np.array([[1.0, 3.0, 0.0, 4.0]])
    draws = [int(select(weights, weights, "sample", np.array([u]))[0]) for u in np.linspace(0.0005, 0.9995, 2000)]
    counts = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(counts, [1 / 8, 3 / 8, 0, 4 / 8], atol=2e-3)


def test_unknown_selection_is_refused():
    with pytest.raises(ValueError, match="selection"):
        select(np.ones((1, 2)), np.ones((1, 2)), "best", np.zeros(1))
