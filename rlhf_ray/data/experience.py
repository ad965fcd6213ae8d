"""From a scored batch to advantages, as the config asks: KL shaping, the estimator, whitening, and the
rollout correction's importance weights."""

from __future__ import annotations

from rlhf_ray.algorithms.advantages import ADVANTAGE_ESTIMATORS, AdvantageInput
from rlhf_ray.algorithms.kl_penalty import kl_penalty_rewards
from rlhf_ray.algorithms.masked import masked_mean, masked_sum, masked_whiten
from rlhf_ray.algorithms.rollout_correction import importance_weights
from rlhf_ray.config.schema import AlgorithmConfig
from rlhf_ray.data import SequenceBatch


def compute_advantages(
    batch: SequenceBatch, algo: AlgorithmConfig, kl_coef: float, samples_per_prompt: int
) -> tuple[SequenceBatch, dict[str, float]]:
    """Needs ``scores`` (and ``turn_rewards`` in conversations with rewards per turn) and ``old_logprobs``
    (``ref_logprobs`` when there is a KL, ``values`` for GAE, ``rollout_logprobs`` for a rollout
    correction); sets ``advantages``, ``returns``
    and, with a rollout correction, ``is_weights``. The KL is in the reward only when
    ``algo.kl.placement`` is ``reward``; it is reported either way, per sequence (``train/kl``, the sum
    over a response's tokens) and per token (``train/kl_per_token``, the mean over valid tokens)."""
    mask = batch.response_mask
    ref_logprobs = batch.ref_logprobs if batch.ref_logprobs is not None else batch.old_logprobs
    reward_kl_coef = kl_coef if algo.kl.placement == "reward" else 0.0
    kl_rewards, kl = kl_penalty_rewards(batch.old_logprobs, ref_logprobs, mask, reward_kl_coef, algo.kl.estimator)
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
        "train/kl": float(masked_sum(kl, mask, dim=-1).mean()),
        "train/kl_per_token": float(masked_mean(kl, mask)),
        "train/advantage_mean": float(advantages[mask.bool()].mean()) if mask.any() else 0.0,
        "train/return_mean": float(estimate.returns[mask.bool()].mean()) if mask.any() else 0.0,
    }
    batch = batch.with_fields(advantages=advantages, returns=estimate.returns)
    correction = algo.rollout_correction
    if correction.mode != "none":
        weights = importance_weights(
            batch.old_logprobs,
            batch.rollout_logprobs,
            mask,
            correction.mode,
            correction.level,
            correction.tis_cap,
            correction.mis_low,
            correction.mis_high,
        )
        batch = batch.with_fields(is_weights=weights.weights)
        metrics.update(weights.metrics)
    return batch, metrics
