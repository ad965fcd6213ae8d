"""Batched sampling from a transformers causal LM with a KV cache: every row of a call decodes together.

Each row draws its randomness from a generator of its own, so a row's tokens depend on its seed and
prompt only, not on which other rows share the batch (up to the rounding of padded batched matmuls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Decoded:
    tokens: torch.Tensor
    """[B, T] sampled token ids; positions after a row's stop token hold the pad id."""
    logprobs: torch.Tensor
    """[B, T] log-prob of each sampled token under the distribution it was drawn from (tempered, cut by
    top-k / top-p); at temperature 0, under the untempered softmax."""
    lengths: list[int]
    """Tokens per row, its stop token included."""
    stopped: list[bool]
    """Whether the row ended on a stop token (else it reached the length limit)."""


@torch.no_grad()
def decode(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    stop_ids: set[int],
    pad_token_id: int,
) -> Decoded:
    """Sample up to ``max_new_tokens`` after each prompt (left-padded into one batch); ``temperature``
    0 is greedy. Row ``i`` draws from ``generators[i]``."""
    device = next(model.parameters()).device
    rows, width = len(prompts), max(map(len, prompts))
    input_ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((rows, width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)

    tokens = torch.full((rows, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((rows, max_new_tokens), device=device)
    lengths = [max_new_tokens] * rows
    stopped = [False] * rows
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    stop_tensor = torch.tensor(sorted(stop_ids), device=device)
    for step in range(max_new_tokens):
        logits = _sampling_logits(out.logits[:, -1].float(), temperature, top_p, top_k)
        next_tokens = _sample(logits, generators, temperature).masked_fill(done, pad_token_id)
        tokens[:, step] = next_tokens
        logprobs[:, step] = torch.log_softmax(logits, -1).gather(-1, next_tokens[:, None]).squeeze(-1)
        ended = ~done & torch.isin(next_tokens, stop_tensor)
        for row in torch.nonzero(ended).flatten().tolist():
            lengths[row], stopped[row] = step + 1, True
        done |= ended
        if done.all() or step + 1 == max_new_tokens:
            break
        mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=device)], dim=1)
        positions = positions[:, -1:] + 1
        out = model(
            input_ids=next_tokens[:, None],
            attention_mask=mask,
            position_ids=positions,
            past_key_values=out.past_key_values,
            use_cache=True,
        )
    return Decoded(tokens.cpu(), logprobs.cpu(), lengths, stopped)


def _sampling_logits(logits: torch.Tensor, temperature: float, top_p: float, top_k: int) -> torch.Tensor:
    """The logits of the distribution a row samples from: divided by ``temperature`` with -inf outside
    what top-k and top-p keep; at temperature 0 (greedy) the logits as they are."""
    if temperature == 0:
        return logits
    return _keep_top_k_top_p(logits / temperature, top_k, top_p)


def _sample(logits: torch.Tensor, generators: Sequence[torch.Generator], temperature: float) -> torch.Tensor:
    """One token per row of ``_sampling_logits``: greedy at temperature 0, else drawn from their softmax
    by inverting its cumulative distribution at one uniform number per row (so a row's generator
    advances by one draw per token, whatever the vocabulary)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = logits.softmax(-1)
    cumulative = probs.cumsum(-1)
    uniform = torch.stack([torch.rand((), generator=g) for g in generators]).to(logits.device)
    # side="right" never lands on a token of probability 0 (its cumulative value equals the previous one).
    tokens = torch.searchsorted(cumulative, (uniform * cumulative[:, -1]).unsqueeze(-1), side="right")
    return tokens.squeeze(-1).clamp(max=logits.shape[-1] - 1)


def _keep_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """``logits`` with -inf outside the ``top_k`` largest (0: no limit) and outside the smallest set
    whose probability reaches ``top_p`` (1: no limit)."""
    if 0 < top_k < logits.shape[-1]:
        kth_largest = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability of the tokens ranked above each one
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits
