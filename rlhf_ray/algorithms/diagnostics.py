"""Numbers that tell whether the machinery is right, not part of any objective."""

import torch

from rlhf_ray.algorithms.masked import masked_mean


def logprob_mismatch(
    rollout_logprobs: torch.Tensor, policy_logprobs: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """Mean and max |engine log-prob - policy log-prob| over valid tokens: how far the rollout engine's
    copy of the policy (weights, kernels, precision) is from the policy itself."""
    diff = (rollout_logprobs - policy_logprobs).abs()
    valid = mask.bool()
    return {
        "rollout/logprob_mismatch_mean": float(masked_mean(diff, mask)),
        "rollout/logprob_mismatch_max": float(diff[valid].max()) if valid.any() else 0.0,
    }
