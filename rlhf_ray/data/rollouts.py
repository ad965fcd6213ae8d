"""Turning rollout engine samples into a sequence batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlhf_ray.data.batch import SequenceBatch, pack_sequences
from rlhf_ray.engines.rollout import Sample


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
