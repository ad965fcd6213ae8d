"""The batch of sequences passed between the driver and the roles.

A sequence is a prompt, left-padded to the batch's prompt length, followed by a response,
right-padded to the batch's response length: ``sequences`` is ``[B, P + R]``. Per-token fields of
the response (log-probs, values, advantages, ...) are ``[B, R]`` and aligned with
``response_mask``: position ``t`` is the ``t``-th response token, predicted from everything before it.
In a conversation the response is every turn after the prompt; ``response_mask`` is 1 on the tokens the
policy sampled only, so the environment's messages are context: no loss, KL or value target on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

PER_TOKEN_FIELDS = (
    "rollout_logprobs",
    "old_logprobs",
    "ref_logprobs",
    "values",
    "advantages",
    "returns",
    "is_weights",
    "turn_rewards",
)
PER_SAMPLE_LISTS = ("texts", "columns")
"""Fields holding, under each name, a list with one value per sample."""


@dataclass
class SequenceBatch:
    sequences: torch.Tensor
    """[B, P + R] token ids: left-padded prompt, then right-padded response."""
    attention_mask: torch.Tensor
    """[B, P + R] 1 on real tokens of prompt and response."""
    response_mask: torch.Tensor
    """[B, R] 1 on the response tokens the policy sampled (the loss, KL and value targets cover these only)."""
    rollout_logprobs: torch.Tensor | None = None
    """[B, R] log-probs of the sampled tokens as the rollout engine computed them."""
    old_logprobs: torch.Tensor | None = None
    """[B, R] log-probs of the response under the policy before this iteration's update."""
    ref_logprobs: torch.Tensor | None = None
    """[B, R] log-probs under the reference policy."""
    values: torch.Tensor | None = None
    """[B, R] critic values before the update."""
    advantages: torch.Tensor | None = None
    """[B, R] advantages."""
    returns: torch.Tensor | None = None
    """[B, R] value targets."""
    is_weights: torch.Tensor | None = None
    """[B, R] importance weights of the policy loss from ``algorithm.rollout_correction`` (None: none)."""
    turn_rewards: torch.Tensor | None = None
    """[B, R] rewards of single policy turns, each on its turn's last token (None: only ``scores``)."""
    scores: torch.Tensor | None = None
    """[B] one reward per sequence (on its last policy token)."""
    texts: dict[str, list[Any]] = field(default_factory=dict)
    """Decoded text per sample (``prompt``, ``response``, ``label``, ``finish``) and the conversation as
    chat messages (``messages``), for reward functions and tables."""
    columns: dict[str, list[Any]] = field(default_factory=dict)
    """The prompt rows' other columns, one value per sample, passed to reward functions by name."""

    def __post_init__(self):
        batch_size, total = self.sequences.shape
        if self.attention_mask.shape != (batch_size, total):
            raise ValueError(f"attention_mask is {tuple(self.attention_mask.shape)}, sequences {(batch_size, total)}")
        if self.response_mask.dim() != 2 or self.response_mask.shape[0] != batch_size:
            raise ValueError(f"response_mask is {tuple(self.response_mask.shape)}, expected [{batch_size}, R]")
        if self.response_mask.shape[1] >= total:
            raise ValueError("a sequence needs at least one prompt token before the response")
        for name in PER_TOKEN_FIELDS:
            value = getattr(self, name)
            if value is not None and value.shape != self.response_mask.shape:
                raise ValueError(f"{name} is {tuple(value.shape)}, response_mask {tuple(self.response_mask.shape)}")
        if self.scores is not None and self.scores.shape != (batch_size,):
            raise ValueError(f"scores is {tuple(self.scores.shape)}, expected ({batch_size},)")
        for kind in PER_SAMPLE_LISTS:
            for name, values in getattr(self, kind).items():
                if len(values) != batch_size:
                    raise ValueError(f"{kind}[{name!r}] has {len(values)} entries for {batch_size} sequences")

    def __len__(self) -> int:
        return self.sequences.shape[0]

    @property
    def response_length(self) -> int:
        return self.response_mask.shape[1]

    def _tensor_fields(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}

    def select(self, index: torch.Tensor | Sequence[int]) -> SequenceBatch:
        """The rows at ``index`` (a list or 1-D tensor of row numbers), in that order."""
        index = torch.as_tensor(index, dtype=torch.long)
        tensors = {name: value[index] for name, value in self._tensor_fields().items()}
        rows = index.tolist()
        lists = {
            kind: {name: [values[i] for i in rows] for name, values in getattr(self, kind).items()}
            for kind in PER_SAMPLE_LISTS
        }
        return replace(self, **tensors, **lists)

    def chunks(self, sizes: Sequence[int]) -> list[SequenceBatch]:
        """Consecutive pieces of the given sizes (which sum to the batch size)."""
        if sum(sizes) != len(self):
            raise ValueError(f"chunk sizes {list(sizes)} do not add up to the batch size {len(self)}")
        bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
        return [self.select(range(start, stop)) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]

    def with_fields(self, **values) -> SequenceBatch:
        """A copy with some fields set (validated like a new batch)."""
        return replace(self, **values)

    def to(self, device: torch.device | str) -> SequenceBatch:
        return replace(self, **{name: value.to(device) for name, value in self._tensor_fields().items()})

    @staticmethod
    def concat(batches: Sequence[SequenceBatch]) -> SequenceBatch:
        """Rows of several batches with the same prompt and response lengths, in order."""
        if not batches:
            raise ValueError("cannot concatenate zero batches")
        first = batches[0]
        tensors = {}
        for name in first._tensor_fields():
            parts = [getattr(b, name) for b in batches]
            if any(p is None for p in parts):
                raise ValueError(f"field {name!r} is set in some batches and not in others")
            tensors[name] = torch.cat(parts)
        lists = {
            kind: {name: [v for b in batches for v in getattr(b, kind)[name]] for name in getattr(first, kind)}
            for kind in PER_SAMPLE_LISTS
        }
        return replace(first, **tensors, **lists)


def pack_sequences(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_token_id: int
) -> SequenceBatch:
    """A batch from token-id lists: prompts left-padded, responses right-padded."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    prompt_len = max(len(p) for p in prompts)
    response_len = max(1, max((len(r) for r in responses), default=1))
    batch_size = len(prompts)
    sequences = torch.full((batch_size, prompt_len + response_len), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(sequences)
    response_mask = torch.zeros((batch_size, response_len), dtype=torch.long)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        sequences[row, prompt_len - len(prompt) : prompt_len] = torch.tensor(prompt)
        attention_mask[row, prompt_len - len(prompt) : prompt_len] = 1
        if response:
            sequences[row, prompt_len : prompt_len + len(response)] = torch.tensor(response)
            attention_mask[row, prompt_len : prompt_len + len(response)] = 1
            response_mask[row, : len(response)] = 1
    return SequenceBatch(sequences=sequences, attention_mask=attention_mask, response_mask=response_mask)
