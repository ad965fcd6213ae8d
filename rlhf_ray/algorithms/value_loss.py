"""The clipped value (critic) loss of PPO."""

import torch

from rlhf_ray.algorithms._shapes import require_same_shape
from rlhf_ray.algorithms.masked import masked_mean
from rlhf_ray.algorithms.policy_loss import aggregate_loss


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = None,
    aggregation: str = "token_mean",
    max_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, clip_fraction): 0.5 * max((v - R)^2, (v_clipped - R)^2) aggregated over valid tokens,
    where v_clipped keeps v within clip of the rollout-time value. clip=None is the plain squared error.
    ``aggregation`` and ``max_length`` are as in ``aggregate_loss``.

    clip_fraction (detached) is the share of valid tokens where the clipped error is the larger one.
    """
    require_same_shape(values=values, old_values=old_values, returns=returns, mask=mask)
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * aggregate_loss(unclipped, mask, aggregation, max_length), values.new_zeros(())
    if clip <= 0:
        raise ValueError(f"value clip must be > 0, or None for no clipping, got {clip}")
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    clipped = (clipped_values - returns) ** 2
    clip_fraction = masked_mean((clipped > unclipped).float(), mask).detach()
    return 0.5 * aggregate_loss(torch.maximum(unclipped, clipped), mask, aggregation, max_length), clip_fraction
