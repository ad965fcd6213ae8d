"""Importance correction for rollouts sampled by a slightly different policy than the trainer's.

The engines sample from pi_rollout (bf16 weights, other kernels, top-k / top-p truncation, a version
behind); PPO's ratio starts from pi_old, the trainer's recomputed probabilities of the same tokens.
Weighting each token's policy loss by pi_old / pi_rollout makes the gradient the one of samples drawn
from pi_old. Truncated IS (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy
RL training") caps the weight; masked IS drops the tokens whose ratio is far from 1 instead.
"""

from dataclasses import dataclass

import torch

from rlhf_ray.algorithms._shapes import require_same_shape
from rlhf_ray.algorithms.masked import masked_mean, masked_sum

ROLLOUT_CORRECTION_MODES = ("tis", "mis")
ROLLOUT_CORRECTION_LEVELS = ("token", "sequence")
_MAX_LOG_RATIO = 20.0  # exp(20) ~ 5e8: far past any cap, and no overflow in a long sequence's sum


@dataclass(frozen=True)
class ImportanceWeights:
    weights: torch.Tensor
    """[B, T] detached weight of each token's policy loss; 0 at masked positions."""
    metrics: dict[str, float]
    """``rollout/is_weight_mean`` and ``rollout/is_weight_max`` over valid tokens, and
    ``rollout/is_masked_fraction``: the share of valid tokens given weight 0."""


def importance_weights(
    old_logp: torch.Tensor,
    rollout_logp: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    level: str = "token",
    tis_cap: float = 2.0,
    mis_low: float = 0.5,
    mis_high: float = 2.0,
) -> ImportanceWeights:
    """Weights from the ratio pi_old / pi_rollout of each token (``level`` token) or of each sequence, the
    product of its tokens' ratios (``level`` sequence, one weight for all its tokens).

    ``tis``: min(ratio, tis_cap). ``mis``: 1 where mis_low <= ratio <= mis_high, else 0.
    """
    require_same_shape(old_logp=old_logp, rollout_logp=rollout_logp, mask=mask)
    if mode not in ROLLOUT_CORRECTION_MODES:
        raise ValueError(f"unknown rollout correction mode {mode!r}; choose one of {list(ROLLOUT_CORRECTION_MODES)}")
    if level not in ROLLOUT_CORRECTION_LEVELS:
        raise ValueError(f"unknown rollout correction level {level!r}; choose one of {list(ROLLOUT_CORRECTION_LEVELS)}")
    if tis_cap <= 0:
        raise ValueError(f"tis_cap must be > 0, got {tis_cap}")
    if not 0 <= mis_low < mis_high:
        raise ValueError(f"need 0 <= mis_low < mis_high, got mis_low {mis_low} and mis_high {mis_high}")
    valid = mask.bool()
    log_ratio = torch.where(valid, (old_logp - rollout_logp).double(), 0.0)
    if level == "sequence":
        log_ratio = masked_sum(log_ratio, valid, dim=-1).unsqueeze(-1).expand_as(log_ratio)
    ratio = log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO).exp()
    if mode == "tis":
        weights = ratio.clamp(max=tis_cap)
    else:
        weights = ((ratio >= mis_low) & (ratio <= mis_high)).double()
    weights = torch.where(valid, weights, 0.0).to(old_logp.dtype).detach()
    metrics = {
        "rollout/is_weight_mean": float(masked_mean(weights, valid)),
        "rollout/is_weight_max": float(weights[valid].max()) if valid.any() else 0.0,
        "rollout/is_masked_fraction": float(masked_mean((weights == 0).float(), valid)),
    }
    return ImportanceWeights(weights, metrics)
