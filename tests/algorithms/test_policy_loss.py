import math

import pytest
import torch

from rlhf_ray.algorithms import LOSS_AGGREGATIONS, aggregate_loss, aggregation_units, ppo_policy_loss

B, T = 8, 5


def valid_rows(per_token, mask):
    rows = [[per_token[i, t].item() for t in range(T) if mask[i, t]] for i in range(B)]
    return [row for row in rows if row]


REFERENCE_AGGREGATION = {
    "token_mean": lambda rows: sum(map(sum, rows)) / sum(map(len, rows)),
    "seq_mean_token_mean": lambda rows: sum(sum(row) / len(row) for row in rows) / len(rows),
    "seq_mean_token_sum": lambda rows: sum(sum(row) for row in rows) / len(rows),
    "seq_mean_token_sum_norm": lambda rows: sum(sum(row) / T for row in rows) / len(rows),
}


def test_every_aggregation_has_a_reference():
    assert set(REFERENCE_AGGREGATION) == set(LOSS_AGGREGATIONS)


@pytest.mark.parametrize("scattered", [False, True])
@pytest.mark.parametrize("mode", sorted(REFERENCE_AGGREGATION))
def test_aggregate_loss_matches_loop_and_skips_empty_rows(randn, random_mask, mode, scattered):
    mask = random_mask(B, T, scattered)
    per_token = randn(B, T).masked_fill(~mask, float("nan"))
    expected = REFERENCE_AGGREGATION[mode](valid_rows(per_token, mask))
    assert aggregate_loss(per_token, mask, mode, max_length=T).item() == pytest.approx(expected)
    units = sum(map(len, valid_rows(per_token, mask))) if mode == "token_mean" else len(valid_rows(per_token, mask))
    assert aggregation_units(mask, mode) == units


@pytest.mark.parametrize("mode", sorted(REFERENCE_AGGREGATION))
def test_aggregate_loss_of_nothing_is_zero(randn, mode):
    assert aggregate_loss(randn(2, 3), torch.zeros(2, 3), mode, max_length=3).item() == 0.0
    assert aggregation_units(torch.zeros(2, 3), mode) == 0


def test_dr_grpo_normalises_by_the_constant_max_length_not_the_batchs_longest_response():
    per_token = torch.tensor([[1.0, 2.0, 0.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # (3 / 16 + 4 / 16) / 2: the same divisor whatever the longest response of this batch.
    assert aggregate_loss(per_token, mask, "seq_mean_token_sum_norm", max_length=16).item() == pytest.approx(7 / 32)
    with pytest.raises(ValueError, match=r"'seq_mean_token_sum_norm' divides by a constant max_length.*got None"):
        aggregate_loss(per_token, mask, "seq_mean_token_sum_norm")


def test_unknown_aggregation_lists_valid_ones(randn):
    with pytest.raises(ValueError, match=r"unknown loss aggregation 'sum'.*'token_mean'"):
        aggregate_loss(randn(2, 3), torch.ones(2, 3), "sum")


def reference_ppo_token(logp, old_logp, advantage, clip_low, clip_high, dual_clip):
    """(loss, ratio clip active, dual clip active, k3 KL) of one token, written out case by case."""
    ratio = math.exp(logp - old_logp)
    clipped_ratio = min(max(ratio, 1 - clip_low), 1 + clip_high)
    loss = max(-advantage * ratio, -advantage * clipped_ratio)
    clip_active = -advantage * clipped_ratio > -advantage * ratio
    dual_active = dual_clip is not None and advantage < 0 and loss > -advantage * dual_clip
    if dual_active:
        loss = -advantage * dual_clip
    return loss, clip_active, dual_active, ratio - 1 - math.log(ratio)


@pytest.fixture
def ppo_batch(randn, random_mask):
    mask = random_mask(B, T)
    old_logp = randn(B, T) - 2.0
    logp = old_logp + randn(B, T)  # ratios from ~0.1 to ~10: plenty of clipping and dual clipping
    return logp, old_logp, randn(B, T), mask


@pytest.mark.parametrize(("clip_low", "clip_high", "dual_clip"), [(0.2, 0.2, None), (0.2, 0.28, 3.0), (0.1, 0.3, 1.5)])
def test_ppo_policy_loss_matches_loop(ppo_batch, clip_low, clip_high, dual_clip):
    logp, old_logp, advantages, mask = ppo_batch
    tokens = [
        reference_ppo_token(
            logp[i, t].item(), old_logp[i, t].item(), advantages[i, t].item(), clip_low, clip_high, dual_clip
        )
        for i in range(B)
        for t in range(T)
        if mask[i, t]
    ]

    loss, stats = ppo_policy_loss(logp, old_logp, advantages, mask, clip_low, clip_high, dual_clip)

    count = len(tokens)
    assert loss.item() == pytest.approx(sum(token[0] for token in tokens) / count)
    assert stats.clip_fraction.item() == pytest.approx(sum(token[1] for token in tokens) / count)
    assert stats.dual_clip_fraction.item() == pytest.approx(sum(token[2] for token in tokens) / count)
    assert stats.approx_kl.item() == pytest.approx(sum(token[3] for token in tokens) / count)
    assert 0 < stats.clip_fraction < 1
    if dual_clip is not None:
        assert stats.dual_clip_fraction > 0


def test_ppo_policy_loss_passes_aggregation_through(ppo_batch):
    logp, old_logp, advantages, mask = ppo_batch
    token_mean, _ = ppo_policy_loss(logp, old_logp, advantages, mask)
    sum_norm, _ = ppo_policy_loss(
        logp, old_logp, advantages, mask, aggregation="seq_mean_token_sum_norm", max_length=2 * T
    )
    per_token = torch.maximum(
        -advantages * (logp - old_logp).exp(), -advantages * (logp - old_logp).exp().clamp(0.8, 1.2)
    )
    expected = aggregate_loss(per_token, mask, "seq_mean_token_sum_norm", max_length=2 * T)
    assert sum_norm.item() == pytest.approx(expected.item())
    assert sum_norm.item() != pytest.approx(token_mean.item())


def test_importance_weights_multiply_each_tokens_loss(ppo_batch, randn):
    logp, old_logp, advantages, mask = ppo_batch
    weights = randn(B, T).abs()
    per_row: dict[int, float] = {}
    for i in range(B):
        for t in range(T):
            if mask[i, t]:
                loss, *_ = reference_ppo_token(
                    logp[i, t].item(), old_logp[i, t].item(), advantages[i, t].item(), 0.2, 0.2, 3.0
                )
                per_row[i] = per_row.get(i, 0.0) + weights[i, t].item() * loss

    plain, _ = ppo_policy_loss(logp, old_logp, advantages, mask, dual_clip=3.0, aggregation="seq_mean_token_sum")
    weighted, _ = ppo_policy_loss(
        logp, old_logp, advantages, mask, dual_clip=3.0, aggregation="seq_mean_token_sum", is_weights=weights
    )

    assert weighted.item() == pytest.approx(sum(per_row.values()) / len(per_row))
    assert weighted.item() != pytest.approx(plain.item())


def test_ppo_gradient_is_zero_on_clipped_tokens_and_minus_advantage_times_ratio_elsewhere(ppo_batch):
    logp, old_logp, advantages, mask = ppo_batch
    logp = logp.clone().requires_grad_(True)
    loss, _ = ppo_policy_loss(logp, old_logp, advantages, mask)
    loss.backward()

    count = mask.sum().item()
    for i in range(B):
        for t in range(T):
            _, clip_active, _, _ = reference_ppo_token(
                logp[i, t].item(), old_logp[i, t].item(), advantages[i, t].item(), 0.2, 0.2, None
            )
            ratio = math.exp(logp[i, t].item() - old_logp[i, t].item())
            expected = 0.0 if clip_active or not mask[i, t] else -advantages[i, t].item() * ratio / count
            assert logp.grad[i, t].item() == pytest.approx(expected, abs=1e-15)


def test_on_policy_loss_is_minus_mean_advantage_with_nothing_clipped(randn, random_mask):
    mask = random_mask(B, T)
    logp, advantages = randn(B, T), randn(B, T)
    loss, stats = ppo_policy_loss(logp, logp.clone(), advantages, mask, dual_clip=2.0)
    expected = -sum(advantages[i, t].item() for i in range(B) for t in range(T) if mask[i, t]) / mask.sum().item()
    assert loss.item() == pytest.approx(expected)
    assert stats.clip_fraction.item() == stats.approx_kl.item() == stats.dual_clip_fraction.item() == 0.0


@pytest.mark.parametrize("dual_clip", [1.0, 0.5])
def test_dual_clip_of_at_most_one_is_rejected(ppo_batch, dual_clip):
    with pytest.raises(ValueError, match=rf"dual_clip must be > 1.*got {dual_clip}"):
        ppo_policy_loss(*ppo_batch, dual_clip=dual_clip)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"clip_low": 1.0}, "clip_low must be in"), ({"clip_high": -0.1}, "clip_high")]
)
def test_bad_clip_ranges_are_rejected(ppo_batch, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ppo_policy_loss(*ppo_batch, **kwargs)
