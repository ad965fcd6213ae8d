import pytest
import torch

from rlhf_ray.algorithms import aggregate_loss, clipped_value_loss

B, T = 8, 5


@pytest.fixture
def value_batch(randn, random_mask):
    old_values = randn(B, T)
    return old_values + randn(B, T), old_values, randn(B, T), random_mask(B, T)


def reference_value_token(value, old_value, target, clip):
    unclipped = (value - target) ** 2
    if clip is None:
        return unclipped, False
    clipped = (old_value + min(max(value - old_value, -clip), clip) - target) ** 2
    return max(unclipped, clipped), clipped > unclipped


@pytest.mark.parametrize("clip", [None, 0.2, 0.4])
def test_clipped_value_loss_matches_loop(value_batch, clip):
    values, old_values, returns, mask = value_batch
    tokens = [
        reference_value_token(values[i, t].item(), old_values[i, t].item(), returns[i, t].item(), clip)
        for i in range(B)
        for t in range(T)
        if mask[i, t]
    ]

    loss, clip_fraction = clipped_value_loss(values, old_values, returns, mask, clip)

    assert loss.item() == pytest.approx(0.5 * sum(token[0] for token in tokens) / len(tokens))
    assert clip_fraction.item() == pytest.approx(sum(token[1] for token in tokens) / len(tokens))
    if clip is not None:
        assert 0 < clip_fraction < 1


def test_value_loss_passes_aggregation_through(value_batch):
    values, old_values, returns, mask = value_batch
    loss, _ = clipped_value_loss(values, old_values, returns, mask, aggregation="seq_mean_token_sum")
    assert loss.item() == pytest.approx(
        0.5 * aggregate_loss((values - returns) ** 2, mask, "seq_mean_token_sum").item()
    )


def test_value_loss_ignores_masked_positions(value_batch):
    values, old_values, returns, mask = value_batch
    loss, _ = clipped_value_loss(values, old_values, returns, mask, clip=0.2)
    poisoned, _ = clipped_value_loss(values.masked_fill(~mask, float("nan")), old_values, returns, mask, clip=0.2)
    assert poisoned.item() == loss.item()


@pytest.mark.parametrize("clip", [0.0, -0.2])
def test_non_positive_clip_is_rejected(value_batch, clip):
    with pytest.raises(ValueError, match="value clip must be > 0, or None"):
        clipped_value_loss(*value_batch, clip=clip)


def test_no_clip_reports_zero_clip_fraction(value_batch):
    _, clip_fraction = clipped_value_loss(*value_batch)
    assert torch.equal(clip_fraction, torch.zeros((), dtype=torch.float64))
