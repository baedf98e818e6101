import pytest
import torch
from scipy.stats import chisquare

from otpr_ros.core.resampling import effective_sample_size, expectile_weights, select


def test_chosen_index_follows_h_over_sum_h():
    h = torch.tensor([0.0, 0.5, 2.0, 1.0, 0.0, 4.0, 0.25, 0.25])
    draws = 40_000
    generator = torch.Generator().manual_seed(0)
    # one call resamples every row: 40 000 independent decisions of the same state
    index = select(h.expand(draws, 8), torch.zeros(draws, 8), "sample", torch.rand(draws, generator=generator))
    counts = torch.bincount(index, minlength=8)
    assert counts[0] == 0 and counts[4] == 0   # H = 0 is never chosen
    support = h > 0
    expected = (h[support] / h.sum() * draws).numpy()
    assert chisquare(counts[support].numpy(), expected).pvalue > 1e-3


def test_chi_square_would_reject_a_wrong_distribution():
    """The test above has power: the same draws against uniform weights fail it."""
    h = torch.tensor([0.5, 2.0, 1.0, 4.0])
    index = select(h.expand(40_000, 4), torch.zeros(40_000, 4), "sample",
                   torch.rand(40_000, generator=torch.Generator().manual_seed(0)))
    counts = torch.bincount(index, minlength=4).numpy()
    assert chisquare(counts, [10_000] * 4).pvalue < 1e-6


def test_all_zero_rows_fall_back_to_the_best_score():
    weights = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    score = torch.tensor([[-3.0, -0.5, -2.0], [5.0, 0.0, 9.0]])
    for how in ("sample", "argmax"):
        assert select(weights, score, how, torch.tensor([0.5, 0.5])).tolist() == [1, 1]


def test_expectile_weights():
    assert expectile_weights(torch.tensor([-1.0, 0.0, 2.0]), 0.7).tolist() == pytest.approx([0.3, 0.7, 0.7])


@pytest.mark.parametrize("weights, score, how, message", [
    (torch.ones(2, 0), torch.ones(2, 0), "argmax", "L >= 1"),
    (torch.ones(2, 3), torch.ones(2, 4), "argmax", "score"),
    (torch.ones(2, 3), torch.ones(2, 3), "best", "selection"),
    (torch.ones(2, 3), torch.ones(2, 3), "sample", "uniform"),
])
def test_bad_input_is_refused(weights, score, how, message):
    with pytest.raises(ValueError, match=message):
        select(weights, score, how)


def test_negative_or_non_finite_weights_are_never_chosen():
    """A robot acts on what this picks: a broken weight counts as 0, a row with none left falls back."""
    weights = torch.tensor([[1.0, -5.0, float("nan")], [float("inf"), -1.0, float("nan")]])
    score = torch.tensor([[0.0, 9.0, 9.0], [0.0, 2.0, float("nan")]])
    for u in (0.0, 0.5, 0.999):
        assert select(weights, score, "sample", torch.tensor([u, u])).tolist() == [0, 1]
    assert select(weights, score, "argmax").tolist() == [0, 1]


def test_effective_sample_size_runs_from_one_to_l():
    weights = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 3.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert effective_sample_size(weights).tolist() == [4.0, 1.0, 2.0, 0.0]
