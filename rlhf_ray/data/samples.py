"""What a rollout engine returns for one sample, and turning samples into a sequence batch."""

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
    """Log-prob of each sampled token under the distribution it was drawn from."""


def batch_from_samples(
    prompts: Sequence[Sequence[int]], samples: Sequence[Sequence[Sample]], pad_token_id: int
) -> SequenceBatch:
    """One row per sample, the samples of a prompt next to each other (prompt order kept)."""
    rows = [
        (prompt, sample) for prompt, prompt_samples in zip(prompts, samples, strict=True) for sample in prompt_samples
    ]
    batch = pack_sequences([p for p, _ in rows], [s.token_ids for _, s in rows], pad_token_id)
    if any(sample.logprobs is None for _, sample in rows):
        return batch
    logprobs = torch.zeros(batch.response_mask.shape)
    for row, (_, sample) in enumerate(rows):
        logprobs[row, : len(sample.logprobs)] = torch.tensor(sample.logprobs)
    return batch.with_fields(rollout_logprobs=logprobs)
