"""The KL part of PPO's per-token rewards: a penalty on every response token (the sequence score is added
on the last token by ``AdvantageInput.token_rewards``)."""

import torch

from rlhf_ray.algorithms._shapes import require_same_shape
from rlhf_ray.algorithms.kl import kl_estimate


def kl_penalty_rewards(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, kl_coef: float, estimator: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (kl_rewards [B, T], kl [B, T]): the per-token KL estimate, and -kl_coef times it.

    Both are 0 at masked positions.
    """
    require_same_shape(logp=logp, ref_logp=ref_logp, mask=mask)
    kl = torch.where(mask.bool(), kl_estimate(logp, ref_logp, estimator), torch.zeros_like(logp))
    return -kl_coef * kl, kl
