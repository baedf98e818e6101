import pytest
import torch
from scipy.stats import chisquare

from otpr_ros.core.resampling import effective_sample_size, expectile_weights, resample


def test_chosen_index_follows_h_over_sum_h():
    h = torch.tensor([0.0, 0.5, 2.0, 1.0, 0.0, 4.0, 0.25, 0.25])
    draws = 40_000
    generator = torch.Generator().manual_seed(0)
    # one call resamples every row: 40 000 independent decisions of the same state
    index = resample(h.expand(draws, 8), torch.zeros(draws, 8), generator)
    counts = torch.bincount(index, minlength=8)
    assert counts[0] == 0 and counts[4] == 0   # H = 0 is never chosen
    support = h > 0
    expected = (h[support] / h.sum() * draws).numpy()
    assert chisquare(counts[support].numpy(), expected).pvalue > 1e-3


def test_chi_square_would_reject_a_wrong_distribution():
    """The test above has power: the same draws against uniform weights fail it."""
    h = torch.tensor([0.5, 2.0, 1.0, 4.0])
    index = resample(h.expand(40_000, 4), torch.zeros(40_000, 4), torch.Generator().manual_seed(0))
    counts = torch.bincount(index, minlength=4).numpy()
    assert chisquare(counts, [10_000] * 4).pvalue < 1e-6


def test_all_zero_rows_fall_back_to_the_best_score():
    weights = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    score = torch.tensor([[-3.0, -0.5, -2.0], [5.0, 0.0, 9.0]])
    assert resample(weights, score).tolist() == [1, 1]


def test_expectile_weights():
    assert expectile_weights(torch.tensor([-1.0, 0.0, 2.0]), 0.7).tolist() == pytest.approx([0.3, 0.7, 0.7])


@pytest.mark.parametrize("weights, score, message", [
    (torch.ones(2, 0), torch.ones(2, 0), "L >= 1"),
    (torch.tensor([[1.0, -1.0]]), torch.zeros(1, 2), "negative"),
    (torch.tensor([[1.0, float("nan")]]), torch.zeros(1, 2), "NaN"),
    (torch.ones(2, 3), torch.ones(2, 4), "fallback_score"),
])
def test_bad_weights_are_refused(weights, score, message):
    with pytest.raises(ValueError, match=message):
        resample(weights, score)


def test_effective_sample_size_runs_from_one_to_l():
    weights = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 3.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert effective_sample_size(weights).tolist() == [4.0, 1.0, 2.0, 0.0]
