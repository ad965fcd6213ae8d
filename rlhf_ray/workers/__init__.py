"""The roles as Ray actor classes: one thin class per role, binding an engine to its methods."""

from rlhf_ray.rewards.functions import RewardError
from rlhf_ray.workers.critic import CriticWorker
from rlhf_ray.workers.policy import PolicyWorker
from rlhf_ray.workers.reference import ReferenceWorker
from rlhf_ray.workers.reward import RewardFunctionWorker, RewardModelWorker, RewardServerWorker

__all__ = [
    "CriticWorker",
    "PolicyWorker",
    "ReferenceWorker",
    "RewardError",
    "RewardFunctionWorker",
    "RewardModelWorker",
    "RewardServerWorker",
]
