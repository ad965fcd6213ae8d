"""Per-token rewards for PPO: a KL penalty on every response token plus the sequence score at the end."""

import torch

from rlhf_ray.algorithms._shapes import require_same_shape, require_scores_per_row
from rlhf_ray.algorithms.kl import kl_estimate
from rlhf_ray.algorithms.masked import last_token_mask


def kl_shaped_rewards(
    scores: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    estimator: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (token_rewards [B, T], kl [B, T]).

    token_rewards is -kl_coef * kl on every valid token, plus the row's score on its last valid token.
    A row whose mask is all zero has no token to carry its score, so it gets no reward at all.
    Both outputs are 0 at masked positions.
    """
    require_same_shape(logp=logp, ref_logp=ref_logp, mask=mask)
    require_scores_per_row(scores, mask)
    valid = mask.bool()
    kl = torch.where(valid, kl_estimate(logp, ref_logp, estimator), torch.zeros_like(logp))
    score_on_last_token = torch.where(last_token_mask(mask), scores.unsqueeze(-1).to(kl.dtype), 0.0)
    return -kl_coef * kl + score_on_last_token, kl
