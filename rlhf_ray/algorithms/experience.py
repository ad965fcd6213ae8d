"""From a scored batch to advantages, as the config asks: KL shaping, the estimator, whitening."""

from __future__ import annotations

from rlhf_ray.algorithms.advantages import AdvantageInput, get_advantage_estimator
from rlhf_ray.algorithms.masked import masked_sum, masked_whiten
from rlhf_ray.algorithms.rewards import kl_shaped_rewards
from rlhf_ray.config.schema import AlgorithmConfig
from rlhf_ray.data import SequenceBatch


def compute_advantages(
    batch: SequenceBatch, algo: AlgorithmConfig, kl_coef: float, samples_per_prompt: int
) -> tuple[SequenceBatch, dict[str, float]]:
    """Needs ``scores`` and ``old_logprobs`` (``ref_logprobs`` when there is a KL, ``values`` for GAE);
    sets ``token_rewards``, ``advantages`` and ``returns``. The KL is in the reward only when
    ``algo.kl.placement`` is ``reward``; its per-sequence mean is reported either way."""
    mask = batch.response_mask
    ref_logprobs = batch.ref_logprobs if batch.ref_logprobs is not None else batch.old_logprobs
    reward_kl_coef = kl_coef if algo.kl.placement == "reward" else 0.0
    token_rewards, kl = kl_shaped_rewards(
        batch.scores, batch.old_logprobs, ref_logprobs, mask, reward_kl_coef, algo.kl.estimator
    )
    estimate = get_advantage_estimator(algo.advantage_estimator)(
        AdvantageInput(
            scores=batch.scores,
            token_rewards=token_rewards,
            mask=mask,
            values=batch.values,
            samples_per_prompt=samples_per_prompt,
            gamma=algo.gamma,
            lam=algo.lam,
        )
    )
    advantages = estimate.advantages
    if algo.advantage_estimator == "gae" and algo.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    sequence_kl = masked_sum(kl, mask, dim=-1)
    metrics = {
        "train/kl": float(sequence_kl.mean()),
        "train/advantage_mean": float(advantages[mask.bool()].mean()) if mask.any() else 0.0,
        "train/return_mean": float(estimate.returns[mask.bool()].mean()) if mask.any() else 0.0,
    }
    return batch.with_fields(token_rewards=token_rewards, advantages=advantages, returns=estimate.returns), metrics
