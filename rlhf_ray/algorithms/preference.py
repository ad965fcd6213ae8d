"""Losses on preference pairs: the Bradley-Terry reward-model loss and DPO / IPO."""

import torch
import torch.nn.functional as F

from rlhf_ray.algorithms._shapes import require_same_shape

DPO_LOSS_TYPES = ("sigmoid", "ipo")


def bradley_terry_loss(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, accuracy) for reward-model scores of preference pairs [N].

    loss = mean of -log sigmoid(chosen - rejected - margin) (the margin, e.g. Llama 2's, demands a larger gap),
    weighted by ``weight`` [N] when given: sum(weight * loss) / sum(weight) (InstructGPT's 1 / C(K, 2) on
    each pair of a ranking of K, so that every ranking counts once).
    accuracy (detached) = share of pairs whose chosen score is strictly higher, margin not applied, weighted alike.
    """
    require_same_shape(chosen_scores=chosen_scores, rejected_scores=rejected_scores)
    gap = chosen_scores - rejected_scores
    shifted_gap = gap if margin is None else gap - margin
    losses, right = -F.logsigmoid(shifted_gap), (gap > 0).float()
    return _weighted_mean(losses, weight), _weighted_mean(right, weight).detach()


def dpo_loss(
    policy_chosen_logp: torch.Tensor,
    policy_rejected_logp: torch.Tensor,
    ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (loss, chosen_rewards, rejected_rewards) from sequence log-probs [N] (sums over response tokens).

    The implicit rewards are beta * (policy - reference) log-probs, detached. With
    logits = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected):
    "sigmoid" is DPO (Rafailov et al. 2023), -log sigmoid(beta * logits); label_smoothing = e assumes the
    labels are flipped with probability e (conservative DPO).
    "ipo" is IPO (Azar et al. 2023), (logits - 1 / (2 * beta))^2, where beta plays the role of tau.
    The loss is the mean over pairs, or with ``weight`` [N] sum(weight * loss) / sum(weight).
    """
    require_same_shape(
        policy_chosen_logp=policy_chosen_logp,
        policy_rejected_logp=policy_rejected_logp,
        ref_chosen_logp=ref_chosen_logp,
        ref_rejected_logp=ref_rejected_logp,
    )
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; choose one of {list(DPO_LOSS_TYPES)}")
    if beta <= 0:
        raise ValueError(f"DPO beta must be > 0, got {beta}")
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"DPO label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if loss_type == "ipo" and label_smoothing != 0:
        raise ValueError("label_smoothing applies only to loss_type='sigmoid'; set it to 0 for 'ipo'")

    chosen_log_ratio = policy_chosen_logp - ref_chosen_logp
    rejected_log_ratio = policy_rejected_logp - ref_rejected_logp
    logits = chosen_log_ratio - rejected_log_ratio
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * logits) - label_smoothing * F.logsigmoid(-beta * logits)
    else:
        losses = (logits - 1 / (2 * beta)) ** 2
    return _weighted_mean(losses, weight), beta * chosen_log_ratio.detach(), beta * rejected_log_ratio.detach()


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``values`` [N], or with ``weight`` [N] sum(weight * values) / sum(weight)."""
    if weight is None:
        return values.mean()
    require_same_shape(values=values, weight=weight)
    return (weight * values).sum() / weight.sum()
