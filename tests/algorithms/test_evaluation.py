import itertools

import pytest
import torch

from rlhf_ray.algorithms.evaluation import mean_pass_at_k, pass_at_k, pass_at_k_values, win_rate


def test_win_rate_counts_ties_half():
    scores = torch.tensor([1.0, 0.5, 0.2, 0.3])
    baseline = torch.tensor([0.0, 0.5, 0.9, 0.3])
    assert win_rate(scores, baseline) == (1 + 0.5 + 0 + 0.5) / 4


def test_a_model_against_itself_wins_half():
    scores = torch.tensor([0.1, -2.0, 3.0])
    assert win_rate(scores, scores.clone()) == 0.5


def test_win_rate_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        win_rate(torch.zeros(3), torch.zeros(4))


@pytest.mark.parametrize(("k", "expected"), [(1, 1 - 3 / 5), (2, 1 - 3 / 10), (3, 1 - 1 / 10), (4, 1.0), (5, 1.0)])
def test_pass_at_k_of_5_samples_with_2_passing(k, expected):
    # C(3, k) / C(5, k): k=1: 3/5; k=2: 3/10; k=3: 1/10; k >= 4: no k-subset misses both passes.
    assert pass_at_k(5, 2, k) == pytest.approx(expected)


def test_pass_at_k_is_the_chance_that_a_random_k_subset_holds_a_pass():
    samples = [True, False, False, True, False, False]
    for k in range(1, 7):
        subsets = list(itertools.combinations(samples, k))
        assert pass_at_k(6, 2, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_pass_at_k_edges_and_bad_input():
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 4, 1) == 1.0
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 1)


def test_mean_pass_at_k_averages_over_prompts():
    passed = torch.tensor([[True, False, True, False, False], [False] * 5, [True] * 5])
    assert mean_pass_at_k(passed, 1) == pytest.approx((0.4 + 0.0 + 1.0) / 3)
    assert mean_pass_at_k(passed, 2) == pytest.approx((0.7 + 0.0 + 1.0) / 3)


def test_pass_at_k_values_are_one_the_powers_of_two_and_n():
    assert pass_at_k_values(1) == [1]
    assert pass_at_k_values(5) == [1, 2, 4, 5]
    assert pass_at_k_values(8) == [1, 2, 4, 8]
