"""The PPO clipped policy objective (with optional dual clip) and the ways to reduce per-token losses."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from rlhf_ray.algorithms._shapes import require_same_shape
from rlhf_ray.algorithms.masked import masked_count, masked_mean, masked_sum
from rlhf_ray.algorithms.registry import Registry

Reduce = Callable[[torch.Tensor, torch.Tensor, "int | None"], torch.Tensor]
"""(per_token [B, T], mask [B, T], max_length) -> the scalar mean over the units of the batch."""


@dataclass(frozen=True)
class LossAggregation:
    reduce: Reduce
    units: Literal["tokens", "sequences"]
    """What the reduction is a mean of: valid tokens, or sequences with at least one valid token. Over an
    optimizer step of several batches, each batch weighs by its units."""


LOSS_AGGREGATIONS: Registry[LossAggregation] = Registry("loss aggregation")


def register_loss_aggregation(name: str, *, units: Literal["tokens", "sequences"]) -> Callable[[Reduce], Reduce]:
    """Register the decorated reduction as ``name`` (``algorithm.loss_aggregation``)."""

    def register(reduce: Reduce) -> Reduce:
        LOSS_AGGREGATIONS.add(name, LossAggregation(reduce, units))
        return reduce

    return register


def aggregate_loss(
    per_token: torch.Tensor, mask: torch.Tensor, mode: str, max_length: int | None = None
) -> torch.Tensor:
    """Reduce a [B, T] per-token loss to a scalar over the valid tokens, as the aggregation ``mode`` does.
    Sequences with no valid token are left out of a mean over sequences."""
    aggregation = LOSS_AGGREGATIONS[mode]
    require_same_shape(per_token=per_token, mask=mask)
    return aggregation.reduce(per_token, mask, max_length)


def aggregation_units(mask: torch.Tensor, mode: str) -> int:
    """How many things ``aggregate_loss`` averages over in a batch: its valid tokens, or its sequences with
    at least one valid token."""
    if LOSS_AGGREGATIONS[mode].units == "tokens":
        return int(masked_count(mask))
    return int((masked_count(mask, dim=-1) > 0).sum())


def _mean_over_sequences(per_sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked_mean(per_sequence, masked_count(mask, dim=-1) > 0)


@register_loss_aggregation("token_mean", units="tokens")
def token_mean(per_token: torch.Tensor, mask: torch.Tensor, max_length: int | None) -> torch.Tensor:
    """Mean over every valid token, so long responses weigh more."""
    return masked_mean(per_token, mask)


@register_loss_aggregation("seq_mean_token_mean", units="sequences")
def seq_mean_token_mean(per_token: torch.Tensor, mask: torch.Tensor, max_length: int | None) -> torch.Tensor:
    """Mean over each sequence's tokens, then over sequences."""
    return _mean_over_sequences(masked_mean(per_token, mask, dim=-1), mask)


@register_loss_aggregation("seq_mean_token_sum", units="sequences")
def seq_mean_token_sum(per_token: torch.Tensor, mask: torch.Tensor, max_length: int | None) -> torch.Tensor:
    """Sum over each sequence's tokens, then mean over sequences."""
    return _mean_over_sequences(masked_sum(per_token, mask, dim=-1), mask)


@register_loss_aggregation("seq_mean_token_sum_norm", units="sequences")
def seq_mean_token_sum_norm(per_token: torch.Tensor, mask: torch.Tensor, max_length: int | None) -> torch.Tensor:
    """Dr. GRPO: each sequence's sum divided by the constant max_length (the longest response the sampler
    allows, never the batch's own longest), then mean over sequences."""
    if max_length is None or max_length < 1:
        raise ValueError(
            f"loss aggregation 'seq_mean_token_sum_norm' divides by a constant max_length >= 1 (the longest "
            f"response: rollout.max_new_tokens times rollout.max_turns), got {max_length}"
        )
    return _mean_over_sequences(masked_sum(per_token, mask, dim=-1) / max_length, mask)


@dataclass(frozen=True)
class PolicyLossStats:
    """Detached diagnostics, each a mean over valid tokens.

    clip_fraction: share of tokens whose ratio clip is active (the clipped term is the larger loss).
    approx_kl: k3 estimate of KL(old || new), ratio - 1 - log(ratio), from tokens sampled by the old policy.
    dual_clip_fraction: share of tokens whose loss the dual clip capped (0 without dual clip).
    """

    clip_fraction: torch.Tensor
    approx_kl: torch.Tensor
    dual_clip_fraction: torch.Tensor


def ppo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    aggregation: str = "token_mean",
    max_length: int | None = None,
    is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, PolicyLossStats]:
    """PPO clipped surrogate loss (Schulman et al. 2017), with asymmetric clip range [1 - clip_low, 1 + clip_high].

    With dual_clip = c, the loss of a token with a negative advantage is further capped at -A * c
    (Ye et al. 2020), so a very large ratio cannot blow the update up. ``is_weights`` (detached, [B, T])
    multiply each token's loss: the rollout correction's importance weights pi_old / pi_rollout.
    ``aggregation`` and ``max_length`` are as in ``aggregate_loss``.
    """
    require_same_shape(logp=logp, old_logp=old_logp, advantages=advantages, mask=mask)
    if is_weights is not None:
        require_same_shape(is_weights=is_weights, mask=mask)
    if not 0 <= clip_low < 1:
        raise ValueError(f"clip_low must be in [0, 1) so that 1 - clip_low stays positive, got {clip_low}")
    if clip_high < 0:
        raise ValueError(f"clip_high must be >= 0, got {clip_high}")
    if dual_clip is not None and dual_clip <= 1:
        raise ValueError(f"dual_clip must be > 1 (it caps the loss at -advantage * dual_clip), got {dual_clip}")

    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = torch.maximum(unclipped, clipped)

    dual_clipped = torch.zeros_like(mask, dtype=torch.bool)
    if dual_clip is not None:
        cap = -advantages * dual_clip
        dual_clipped = (advantages < 0) & (per_token > cap)
        per_token = torch.where(dual_clipped, cap, per_token)
    if is_weights is not None:
        per_token = per_token * is_weights

    stats = PolicyLossStats(
        clip_fraction=masked_mean((clipped > unclipped).float(), mask).detach(),
        approx_kl=masked_mean(torch.expm1(log_ratio) - log_ratio, mask).detach(),
        dual_clip_fraction=masked_mean(dual_clipped.float(), mask).detach(),
    )
    return aggregate_loss(per_token, mask, aggregation, max_length), stats
