"""RLHF math on tensors: masked statistics, KL, rewards, advantages and losses. No Ray, DeepSpeed or I/O."""

from rlhf_ray.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageEstimator,
    AdvantageEstimatorSpec,
    AdvantageInput,
    AdvantageOutput,
    discounted_returns,
    get_advantage_estimator,
    register_advantage_estimator,
)
from rlhf_ray.algorithms.diagnostics import logprob_mismatch
from rlhf_ray.algorithms.kl import (
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    KLEstimatorSpec,
    kl_estimate,
    register_kl_estimator,
)
from rlhf_ray.algorithms.kl_penalty import kl_penalty_rewards
from rlhf_ray.algorithms.logprobs import logprobs_and_entropy_from_logits, logprobs_from_logits
from rlhf_ray.algorithms.masked import (
    last_token_mask,
    masked_count,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
)
from rlhf_ray.algorithms.policy_loss import (
    LOSS_AGGREGATIONS,
    LossAggregation,
    PolicyLossStats,
    aggregate_loss,
    aggregation_units,
    ppo_policy_loss,
    register_loss_aggregation,
)
from rlhf_ray.algorithms.preference import DPO_LOSS_TYPES, bradley_terry_loss, dpo_loss
from rlhf_ray.algorithms.rollout_correction import ROLLOUT_CORRECTION_MODES, ImportanceWeights, importance_weights
from rlhf_ray.algorithms.value_loss import clipped_value_loss

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "DPO_LOSS_TYPES",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATIONS",
    "AdaptiveKLController",
    "AdvantageEstimator",
    "AdvantageEstimatorSpec",
    "AdvantageInput",
    "AdvantageOutput",
    "FixedKLController",
    "ImportanceWeights",
    "KLEstimatorSpec",
    "LossAggregation",
    "PolicyLossStats",
    "ROLLOUT_CORRECTION_MODES",
    "aggregate_loss",
    "aggregation_units",
    "bradley_terry_loss",
    "clipped_value_loss",
    "discounted_returns",
    "dpo_loss",
    "get_advantage_estimator",
    "importance_weights",
    "kl_estimate",
    "kl_penalty_rewards",
    "last_token_mask",
    "logprob_mismatch",
    "logprobs_and_entropy_from_logits",
    "logprobs_from_logits",
    "masked_count",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "ppo_policy_loss",
    "register_advantage_estimator",
    "register_kl_estimator",
    "register_loss_aggregation",
]
