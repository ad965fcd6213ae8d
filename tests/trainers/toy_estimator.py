"""A user's own advantage estimator, registered from outside the package and named in ``algorithm.plugins``."""

import torch

from rlhf_ray.algorithms import AdvantageInput, AdvantageOutput, register_advantage_estimator


@register_advantage_estimator("score_minus_half", kl_in_reward=False)
def score_minus_half(inp: AdvantageInput) -> AdvantageOutput:
    """REINFORCE with a constant baseline: every token of a response gets its score minus 0.5."""
    advantages = torch.where(inp.mask.bool(), (inp.scores - 0.5).unsqueeze(-1), 0.0)
    return AdvantageOutput(advantages=advantages, returns=advantages)
