"""The PPO clipped policy objective (with optional dual clip) and the ways to reduce per-token losses."""

from dataclasses import dataclass

import torch

from rlhf_ray.algorithms._shapes import require_same_shape
from rlhf_ray.algorithms.masked import masked_count, masked_mean, masked_sum

LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm")


def aggregate_loss(
    per_token: torch.Tensor, mask: torch.Tensor, mode: str, max_length: int | None = None
) -> torch.Tensor:
    """Reduce a [B, T] per-token loss to a scalar over the valid tokens.

    token_mean: mean over every valid token of the batch, so long responses weigh more.
    seq_mean_token_mean: mean over each sequence's tokens, then over sequences.
    seq_mean_token_sum: sum over each sequence's tokens, then mean over sequences.
    seq_mean_token_sum_norm: Dr. GRPO; each sequence's sum divided by the constant max_length (the
        longest response the sampler allows, never the batch's own longest), then mean over sequences.
    Sequences with no valid token are left out of the mean over sequences. The mean is over what
    ``aggregation_units`` counts, so a loss averaged over several batches weighs each by those units.
    """
    require_same_shape(per_token=per_token, mask=mask)
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    if mode == "seq_mean_token_mean":
        per_sequence = masked_mean(per_token, mask, dim=-1)
    elif mode == "seq_mean_token_sum":
        per_sequence = masked_sum(per_token, mask, dim=-1)
    elif mode == "seq_mean_token_sum_norm":
        if max_length is None or max_length < 1:
            raise ValueError(
                f"loss aggregation 'seq_mean_token_sum_norm' divides by a constant max_length >= 1 (the longest "
                f"response, rollout.max_new_tokens), got {max_length}"
            )
        per_sequence = masked_sum(per_token, mask, dim=-1) / max_length
    else:
        raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {list(LOSS_AGGREGATIONS)}")
    return masked_mean(per_sequence, masked_count(mask, dim=-1) > 0)


def aggregation_units(mask: torch.Tensor, mode: str) -> int:
    """How many things ``aggregate_loss`` averages over in a batch: its valid tokens (``token_mean``) or its
    sequences with at least one valid token (the ``seq_mean_*`` modes)."""
    if mode not in LOSS_AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {list(LOSS_AGGREGATIONS)}")
    if mode == "token_mean":
        return int(masked_count(mask))
    return int((masked_count(mask, dim=-1) > 0).sum())


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
