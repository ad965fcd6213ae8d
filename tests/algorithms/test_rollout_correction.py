import math

import pytest
import torch

from rlhf_ray.algorithms import importance_weights

B, T = 8, 5


@pytest.fixture
def logps(randn, random_mask):
    mask = random_mask(B, T)
    rollout_logp = randn(B, T) - 2.0
    old_logp = rollout_logp + randn(B, T, scale=0.8)  # token ratios from about 0.1 to 10
    return old_logp, rollout_logp, mask


def reference_weight(ratio: float, mode: str, cap: float, low: float, high: float) -> float:
    if mode == "tis":
        return min(ratio, cap)
    return 1.0 if low <= ratio <= high else 0.0


def reference_weights(old_logp, rollout_logp, mask, mode, level, cap=2.0, low=0.5, high=2.0):
    weights = [[0.0] * T for _ in range(B)]
    for i in range(B):
        positions = [t for t in range(T) if mask[i, t]]
        sequence_ratio = math.exp(sum(old_logp[i, t].item() - rollout_logp[i, t].item() for t in positions))
        for t in positions:
            token_ratio = math.exp(old_logp[i, t].item() - rollout_logp[i, t].item())
            ratio = token_ratio if level == "token" else sequence_ratio
            weights[i][t] = reference_weight(ratio, mode, cap, low, high)
    return torch.tensor(weights, dtype=torch.float64)


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["tis", "mis"])
def test_weights_match_loop(logps, mode, level):
    old_logp, rollout_logp, mask = logps
    expected = reference_weights(old_logp, rollout_logp, mask, mode, level)

    out = importance_weights(old_logp, rollout_logp, mask, mode, level, tis_cap=2.0, mis_low=0.5, mis_high=2.0)

    torch.testing.assert_close(out.weights, expected, rtol=1e-9, atol=1e-12)
    valid = expected[mask]
    assert out.metrics["rollout/is_weight_mean"] == pytest.approx(valid.mean().item())
    assert out.metrics["rollout/is_weight_max"] == pytest.approx(valid.max().item())
    assert out.metrics["rollout/is_masked_fraction"] == pytest.approx((valid == 0).double().mean().item())
    if mode == "tis":
        assert out.metrics["rollout/is_weight_max"] == 2.0  # some ratios exceed the cap
    else:
        assert 0 < out.metrics["rollout/is_masked_fraction"] < 1


def test_a_sequence_shares_one_weight_and_a_long_one_does_not_overflow():
    mask = torch.ones(2, 400, dtype=torch.bool)
    old = torch.zeros(2, 400, dtype=torch.float64)
    rollout = torch.stack([torch.full((400,), -0.5), torch.full((400,), 0.5)]).double()  # ratios e^200, e^-200
    tis = importance_weights(old, rollout, mask, "tis", "sequence", tis_cap=3.0)
    assert torch.equal(tis.weights[0], torch.full((400,), 3.0, dtype=torch.float64))
    assert (tis.weights[1] > 0).all() and (tis.weights[1] < 1e-8).all()
    mis = importance_weights(old, rollout, mask, "mis", "sequence")
    assert mis.metrics["rollout/is_masked_fraction"] == 1.0


def test_identical_policies_get_weight_one_and_masked_positions_zero(random_mask, randn):
    mask = random_mask(B, T, scattered=True)
    logp = randn(B, T)
    for mode in ("tis", "mis"):
        out = importance_weights(logp, logp, mask, mode)
        torch.testing.assert_close(out.weights, mask.double())
        assert out.metrics["rollout/is_masked_fraction"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "none"}, r"unknown rollout correction mode 'none'; choose one of \['tis', 'mis'\]"),
        ({"mode": "tis", "level": "batch"}, r"unknown rollout correction level 'batch'"),
        ({"mode": "tis", "tis_cap": 0.0}, r"tis_cap must be > 0"),
        ({"mode": "mis", "mis_low": 2.0, "mis_high": 1.0}, r"need 0 <= mis_low < mis_high"),
    ],
)
def test_bad_settings_are_rejected(randn, kwargs, message):
    logp = randn(2, 3)
    with pytest.raises(ValueError, match=message):
        importance_weights(logp, logp, torch.ones(2, 3), **kwargs)
