"""Advantage estimators behind one signature, looked up by name.

Every estimator takes an AdvantageInput and returns an AdvantageOutput whose tensors are 0 at masked
positions. Recursions over time skip masked positions: a token's successor is the next valid token of its
row, and after a row's last valid token the value and the return are 0.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhf_ray.algorithms._shapes import require_same_shape, require_scores_per_row
from rlhf_ray.algorithms.masked import last_token_mask, masked_whiten
from rlhf_ray.algorithms.registry import Registry


@dataclass(frozen=True)
class AdvantageInput:
    """What an estimator may use. Per-token tensors are [B, T]; samples of one prompt are contiguous rows.

    kl_rewards: the KL part of each token's reward, -kl_coef * kl (see kl_penalty_rewards), or zeros
        when the KL is not in the reward.
    values: critic values, needed only by "gae".
    turn_rewards: rewards of single policy turns of a conversation, each on its turn's last token (the
        score lands on the row's last valid token); None when there are none.
    eps: guards the divisions by a standard deviation (GRPO and the batch whitening).
    """

    scores: torch.Tensor
    kl_rewards: torch.Tensor
    mask: torch.Tensor
    values: torch.Tensor | None
    samples_per_prompt: int
    gamma: float = 1.0
    lam: float = 1.0
    turn_rewards: torch.Tensor | None = None
    eps: float = 1e-6

    def __post_init__(self):
        require_same_shape(kl_rewards=self.kl_rewards, mask=self.mask)
        if self.values is not None:
            require_same_shape(values=self.values, mask=self.mask)
        if self.turn_rewards is not None:
            require_same_shape(turn_rewards=self.turn_rewards, mask=self.mask)
        require_scores_per_row(self.scores, self.mask)

    def token_rewards(self, scores: torch.Tensor | None = None) -> torch.Tensor:
        """The KL rewards and turn rewards, plus each row's score (``scores``, or the input's) on its last
        valid token."""
        scores = self.scores if scores is None else scores
        rewards = self.kl_rewards + torch.where(last_token_mask(self.mask), scores.unsqueeze(-1), 0.0)
        return rewards if self.turn_rewards is None else rewards + self.turn_rewards

    def row_returns(self) -> torch.Tensor:
        """[B] what a group estimator compares: each row's score, or with turn rewards, the return of the
        turn rewards and the score from the row's first valid token (discounted by ``gamma`` per token)."""
        if self.turn_rewards is None:
            return self.scores
        returns = discounted_returns(self.token_rewards() - self.kl_rewards, self.mask, self.gamma)
        first = self.mask.bool().int().argmax(-1)
        return returns[torch.arange(len(first)), first]


@dataclass(frozen=True)
class AdvantageOutput:
    advantages: torch.Tensor
    returns: torch.Tensor


AdvantageEstimator = Callable[[AdvantageInput], AdvantageOutput]


@dataclass(frozen=True)
class AdvantageEstimatorSpec:
    """An estimator and what it needs, read by the config checks and the driver."""

    estimate: AdvantageEstimator
    needs_critic: bool
    """Reads ``values``: the experiment runs a critic role."""
    needs_groups: bool
    """Compares the samples of one prompt: ``rollout.samples_per_prompt`` must be at least 2."""
    whitening: bool
    """``algorithm.whiten_advantages`` normalises its advantages over the batch (others normalise their own way)."""
    kl_in_reward: bool
    """Takes a KL placed in the reward (``kl_rewards``); one that does not is refused with ``kl.placement: reward``."""


ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimatorSpec] = Registry("advantage estimator")


def register_advantage_estimator(
    name: str,
    *,
    needs_critic: bool = False,
    needs_groups: bool = False,
    whitening: bool = False,
    kl_in_reward: bool = True,
) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Register the decorated function as the estimator ``name`` (``algorithm.advantage_estimator``)."""

    def register(estimator: AdvantageEstimator) -> AdvantageEstimator:
        ADVANTAGE_ESTIMATORS.add(
            name, AdvantageEstimatorSpec(estimator, needs_critic, needs_groups, whitening, kl_in_reward)
        )
        return estimator

    return register


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    return ADVANTAGE_ESTIMATORS[name].estimate


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Return-to-go G_t = r_t + gamma * G_(next valid token), 0 at masked positions."""
    valid = mask.bool()
    returns = torch.zeros_like(rewards)
    next_return = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        return_t = rewards[:, t] + gamma * next_return
        next_return = torch.where(valid[:, t], return_t, next_return)
        returns[:, t] = torch.where(valid[:, t], return_t, 0.0)
    return returns


@register_advantage_estimator("gae", needs_critic=True, whitening=True)
def gae(inp: AdvantageInput) -> AdvantageOutput:
    """Generalized advantage estimation (Schulman et al. 2016) with the critic's values."""
    if inp.values is None:
        raise ValueError("advantage estimator 'gae' needs critic values; pass values or pick a critic-free estimator")
    valid = inp.mask.bool()
    token_rewards = inp.token_rewards()
    advantages = torch.zeros_like(token_rewards)
    next_value = torch.zeros_like(inp.values[:, 0])
    next_advantage = torch.zeros_like(next_value)
    for t in reversed(range(token_rewards.shape[1])):
        delta = token_rewards[:, t] + inp.gamma * next_value - inp.values[:, t]
        advantage_t = delta + inp.gamma * inp.lam * next_advantage
        next_value = torch.where(valid[:, t], inp.values[:, t], next_value)
        next_advantage = torch.where(valid[:, t], advantage_t, next_advantage)
        advantages[:, t] = torch.where(valid[:, t], advantage_t, 0.0)
    returns = torch.where(valid, advantages + inp.values, 0.0)
    return AdvantageOutput(advantages=advantages, returns=returns)


def _scores_by_group(inp: AdvantageInput, estimator: str) -> torch.Tensor:
    """The rows' returns (``row_returns``: their scores, with their turn rewards when there are any) as
    [num_prompts, samples_per_prompt]."""
    n = inp.samples_per_prompt
    batch_size = inp.scores.shape[0]
    if n < 2:
        raise ValueError(
            f"advantage estimator {estimator!r} compares samples of one prompt and needs samples_per_prompt >= 2, "
            f"got {n}"
        )
    if batch_size % n != 0:
        raise ValueError(
            f"advantage estimator {estimator!r}: batch size {batch_size} is not divisible by "
            f"samples_per_prompt {n}; every prompt must come with all of its samples"
        )
    return inp.row_returns().reshape(-1, n)


def _group_advantages(per_row: torch.Tensor, inp: AdvantageInput) -> AdvantageOutput:
    """One advantage per row on its valid tokens, plus each token's return-to-go of the KL rewards (the
    KL in the reward, as OpenRLHF and verl take it with group baselines); it is also the return."""
    on_tokens = torch.where(inp.mask.bool(), per_row.reshape(-1, 1), 0.0)
    advantages = on_tokens + discounted_returns(inp.kl_rewards, inp.mask, inp.gamma)
    return AdvantageOutput(advantages=advantages, returns=advantages)


@register_advantage_estimator("grpo", needs_groups=True)
def grpo(inp: AdvantageInput) -> AdvantageOutput:
    """GRPO (Shao et al. 2024): the score standardised within its prompt's group."""
    groups = _scores_by_group(inp, "grpo")
    normalized = (groups - groups.mean(-1, keepdim=True)) / (groups.std(-1, keepdim=True) + inp.eps)
    return _group_advantages(normalized, inp)


@register_advantage_estimator("dr_grpo", needs_groups=True)
def dr_grpo(inp: AdvantageInput) -> AdvantageOutput:
    """Dr. GRPO (Liu et al. 2025): the score minus its group's mean, without dividing by the std."""
    groups = _scores_by_group(inp, "dr_grpo")
    return _group_advantages(groups - groups.mean(-1, keepdim=True), inp)


@register_advantage_estimator("rloo", needs_groups=True)
def rloo(inp: AdvantageInput) -> AdvantageOutput:
    """RLOO (Ahmadian et al. 2024): the score minus the mean score of the other samples of its prompt."""
    groups = _scores_by_group(inp, "rloo")
    n = inp.samples_per_prompt
    mean_of_others = (groups.sum(-1, keepdim=True) - groups) / (n - 1)
    return _group_advantages(groups - mean_of_others, inp)


@register_advantage_estimator("reinforce++")
def reinforce_plus_plus(inp: AdvantageInput) -> AdvantageOutput:
    """REINFORCE++ (Hu 2025): return-to-go of the token rewards, whitened over the whole batch.

    returns holds the return-to-go before whitening.
    """
    returns = discounted_returns(inp.token_rewards(), inp.mask, inp.gamma)
    return AdvantageOutput(advantages=masked_whiten(returns, inp.mask, eps=inp.eps), returns=returns)


@register_advantage_estimator("reinforce++_baseline", needs_groups=True)
def reinforce_plus_plus_baseline(inp: AdvantageInput) -> AdvantageOutput:
    """REINFORCE++ with a group baseline: like "reinforce++", but the group's mean return is taken off each
    row's score. The return-to-go of (KL rewards + turn rewards + centred score on the last token) is
    whitened over the batch; returns holds it before whitening.
    """
    groups = _scores_by_group(inp, "reinforce++_baseline")
    centred_scores = inp.scores - groups.mean(-1, keepdim=True).expand_as(groups).reshape(-1)
    returns = discounted_returns(inp.token_rewards(centred_scores), inp.mask, inp.gamma)
    return AdvantageOutput(advantages=masked_whiten(returns, inp.mask, eps=inp.eps), returns=returns)
