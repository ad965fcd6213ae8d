"""From a scored batch to advantages, as the config asks: KL shaping, the estimator, whitening; and what
the policy's log-probs before the update give: its KL to the reference and the rollout correction's
importance weights."""

from __future__ import annotations

import torch

from rlhf_ray.algorithms.advantages import ADVANTAGE_ESTIMATORS, AdvantageInput
from rlhf_ray.algorithms.kl_penalty import kl_penalty_rewards
from rlhf_ray.algorithms.masked import masked_mean, masked_sum, masked_whiten
from rlhf_ray.algorithms.rollout_correction import ImportanceWeights, importance_weights
from rlhf_ray.config.schema import AlgorithmConfig
from rlhf_ray.data import SequenceBatch


def compute_advantages(
    batch: SequenceBatch, algo: AlgorithmConfig, kl_coef: float, samples_per_prompt: int
) -> tuple[SequenceBatch, dict[str, float]]:
    """Needs ``scores`` (and ``turn_rewards`` in conversations with rewards per turn), ``values`` for GAE,
    and ``old_logprobs`` and ``ref_logprobs`` when ``algo.kl.placement`` puts the KL in the reward; sets
    ``advantages`` and ``returns``."""
    mask = batch.response_mask
    kl_rewards = torch.zeros(mask.shape)
    if algo.kl.placement == "reward" and batch.ref_logprobs is not None:
        if batch.old_logprobs is None:
            raise ValueError("the KL in the reward needs the policy's old_logprobs before the advantages")
        kl_rewards, _ = kl_penalty_rewards(batch.old_logprobs, batch.ref_logprobs, mask, kl_coef, algo.kl.estimator)
    inp = AdvantageInput(
        scores=batch.scores,
        kl_rewards=kl_rewards,
        mask=mask,
        values=batch.values,
        samples_per_prompt=samples_per_prompt,
        gamma=algo.gamma,
        lam=algo.lam,
        turn_rewards=batch.turn_rewards,
    )
    estimator = ADVANTAGE_ESTIMATORS[algo.advantage_estimator]
    estimate = estimator.estimate(inp)
    advantages = estimate.advantages
    if estimator.whitening and algo.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    metrics = {
        "train/advantage_mean": float(advantages[mask.bool()].mean()) if mask.any() else 0.0,
        "train/return_mean": float(estimate.returns[mask.bool()].mean()) if mask.any() else 0.0,
    }
    return batch.with_fields(advantages=advantages, returns=estimate.returns), metrics


def old_policy_terms(batch: SequenceBatch, algo: AlgorithmConfig) -> tuple[SequenceBatch, dict[str, float]]:
    """From ``old_logprobs``: the KL to the reference (``ref_logprobs``; none without one), reported per
    sequence (``train/kl``, the sum over a response's tokens) and per token (``train/kl_per_token``, the
    mean over valid tokens); with a rollout correction, ``is_weights`` from ``rollout_logprobs`` and their
    ``rollout/is_*`` statistics."""
    mask = batch.response_mask
    ref_logprobs = batch.ref_logprobs if batch.ref_logprobs is not None else batch.old_logprobs
    _, kl = kl_penalty_rewards(batch.old_logprobs, ref_logprobs, mask, 0.0, algo.kl.estimator)
    metrics = {
        "train/kl": float(masked_sum(kl, mask, dim=-1).mean()),
        "train/kl_per_token": float(masked_mean(kl, mask)),
    }
    weights = rollout_correction(batch.old_logprobs, batch, algo)
    if weights is not None:
        batch = batch.with_fields(is_weights=weights.weights)
        metrics.update(weights.metrics)
    return batch, metrics


def rollout_correction(
    old_logprobs: torch.Tensor, batch: SequenceBatch, algo: AlgorithmConfig
) -> ImportanceWeights | None:
    """The importance weights ``algo.rollout_correction`` gives the tokens of ``batch`` (its
    ``rollout_logprobs`` against ``old_logprobs``); None without a correction."""
    correction = algo.rollout_correction
    if correction.mode == "none":
        return None
    return importance_weights(
        old_logprobs,
        batch.rollout_logprobs,
        batch.response_mask,
        correction.mode,
        correction.level,
        correction.tis_cap,
        correction.mis_low,
        correction.mis_high,
    )
