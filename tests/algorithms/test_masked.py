import math
import statistics

import pytest
import torch

from rlhf_ray.algorithms import last_token_mask, masked_mean, masked_sum, masked_var, masked_whiten


def valid_values(x, mask):
    return [x[i, t].item() for i in range(x.shape[0]) for t in range(x.shape[1]) if mask[i, t]]


@pytest.mark.parametrize("scattered", [False, True])
def test_masked_sum_and_mean_match_loops_over_valid_tokens(randn, random_mask, scattered):
    mask = random_mask(7, 5, scattered)
    x = randn(7, 5).masked_fill(~mask, float("nan"))  # masked garbage must not leak

    values = valid_values(x, mask)
    assert masked_sum(x, mask).item() == pytest.approx(sum(values))
    assert masked_mean(x, mask).item() == pytest.approx(sum(values) / len(values))

    for i in range(7):
        row = [x[i, t].item() for t in range(5) if mask[i, t]]
        assert masked_sum(x, mask, dim=-1)[i].item() == pytest.approx(sum(row))
        assert masked_mean(x, mask, dim=-1)[i].item() == pytest.approx(sum(row) / len(row) if row else 0.0)
    for t in range(5):
        column = [x[i, t].item() for i in range(7) if mask[i, t]]
        assert masked_mean(x, mask, dim=0)[t].item() == pytest.approx(sum(column) / len(column) if column else 0.0)


def test_float_mask_means_the_same_as_bool_mask(randn, random_mask):
    mask = random_mask(6, 4, scattered=True)
    x = randn(6, 4)
    torch.testing.assert_close(masked_mean(x, mask.double(), dim=-1), masked_mean(x, mask, dim=-1))
    torch.testing.assert_close(masked_whiten(x, mask.float()), masked_whiten(x, mask))


def test_all_masked_gives_zero_not_nan(randn):
    x = randn(3, 4)
    nothing = torch.zeros(3, 4, dtype=torch.bool)
    assert masked_sum(x, nothing).item() == 0.0
    assert masked_mean(x, nothing).item() == 0.0
    assert masked_var(x, nothing).item() == 0.0
    assert torch.equal(masked_whiten(x, nothing), torch.zeros(3, 4, dtype=torch.float64))


@pytest.mark.parametrize("unbiased", [True, False])
def test_masked_var_matches_statistics_module(randn, random_mask, unbiased):
    mask = random_mask(8, 6, scattered=True)
    x = randn(8, 6).masked_fill(~mask, 1e6)
    values = valid_values(x, mask)
    expected = statistics.variance(values) if unbiased else statistics.pvariance(values)
    assert masked_var(x, mask, unbiased=unbiased).item() == pytest.approx(expected)


def test_masked_var_of_one_valid_value_is_zero(randn):
    mask = torch.tensor([[False, True, False]])
    assert masked_var(randn(1, 3), mask).item() == 0.0


@pytest.mark.parametrize("shift_mean", [True, False])
def test_masked_whiten_matches_loop(randn, random_mask, shift_mean):
    mask = random_mask(8, 6, scattered=True)
    x = randn(8, 6, scale=3.0) + 2.0
    values = valid_values(x, mask)
    mean, std = statistics.fmean(values), math.sqrt(statistics.variance(values) + 1e-8)

    whitened = masked_whiten(x, mask, shift_mean=shift_mean)

    for i in range(8):
        for t in range(6):
            expected = (x[i, t].item() - mean) / std + (0.0 if shift_mean else mean) if mask[i, t] else 0.0
            assert whitened[i, t].item() == pytest.approx(expected)


def test_masked_whiten_gives_zero_mean_unit_variance(randn, random_mask):
    mask = random_mask(16, 10)
    whitened = masked_whiten(randn(16, 10, scale=5.0) - 3.0, mask)
    assert masked_mean(whitened, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert masked_var(whitened, mask).item() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("scattered", [False, True])
def test_last_token_mask_marks_each_rows_last_valid_position(random_mask, scattered):
    mask = random_mask(9, 5, scattered)
    last = last_token_mask(mask)
    for i in range(9):
        positions = [t for t in range(5) if mask[i, t]]
        assert last[i].nonzero().flatten().tolist() == positions[-1:]


def test_shape_mismatch_is_rejected(randn):
    with pytest.raises(ValueError, match="one shape"):
        masked_mean(randn(2, 3), torch.ones(3, 2, dtype=torch.bool))
