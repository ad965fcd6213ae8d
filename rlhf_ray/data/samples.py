"""What a rollout engine returns for one sample, and turning samples into a sequence batch.

A multi-turn rollout is one sample too: its token ids are everything after the prompt (the policy's
turns and the environment's messages between them, exactly as sampled and rendered), ``policy_mask``
marks the tokens the policy sampled, and ``turn_rewards`` holds the rewards that land on its turns'
last tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from rlhf_ray.data.batch import SequenceBatch, pack_sequences


@dataclass
class Sample:
    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    logprobs: list[float] | None = field(default=None)
    """Log-prob of each sampled token under the distribution it was drawn from (0 on tokens the policy did
    not sample)."""
    policy_mask: list[int] | None = None
    """1 on the tokens the policy sampled, 0 on the environment's (None: every token is the policy's)."""
    turn_rewards: dict[int, float] = field(default_factory=dict)
    """Rewards by the position (in ``token_ids``) of the token they land on: a policy turn's last."""
    messages: list[dict[str, str]] | None = None
    """The whole conversation as chat messages, the prompt's included (multi-turn rollouts)."""

    @property
    def turns(self) -> int:
        """The policy's turns in this sample."""
        if self.policy_mask is None:
            return 1
        return sum(1 for i, m in enumerate(self.policy_mask) if m and (i == 0 or not self.policy_mask[i - 1]))


def batch_from_samples(
    prompts: Sequence[Sequence[int]], samples: Sequence[Sequence[Sample]], pad_token_id: int
) -> SequenceBatch:
    """One row per sample, the samples of a prompt next to each other (prompt order kept). The response
    mask covers the policy's tokens only; ``turn_rewards`` is set when a sample has per-turn rewards."""
    rows = [
        (prompt, sample) for prompt, prompt_samples in zip(prompts, samples, strict=True) for sample in prompt_samples
    ]
    batch = pack_sequences([p for p, _ in rows], [s.token_ids for _, s in rows], pad_token_id)
    fields = {}
    if any(sample.policy_mask is not None for _, sample in rows):
        fields["response_mask"] = _per_token(batch, rows, lambda s: s.policy_mask, torch.long)
    if any(sample.turn_rewards for _, sample in rows):
        rewards = torch.zeros(batch.response_mask.shape)
        for row, (_, sample) in enumerate(rows):
            for position, reward in sample.turn_rewards.items():
                rewards[row, position] = reward
        fields["turn_rewards"] = rewards
    if all(sample.logprobs is not None for _, sample in rows):
        fields["rollout_logprobs"] = _per_token(batch, rows, lambda s: s.logprobs, torch.float32)
    return batch.with_fields(**fields)


def _per_token(batch: SequenceBatch, rows, values_of, dtype: torch.dtype) -> torch.Tensor:
    """[B, R] of each sample's per-token values (a sample without them: 1 on its tokens), 0 after them."""
    out = torch.zeros(batch.response_mask.shape, dtype=dtype)
    for row, (_, sample) in enumerate(rows):
        values = values_of(sample)
        out[row, : len(sample.token_ids)] = torch.tensor(values if values is not None else [1] * len(sample.token_ids))
    return out
