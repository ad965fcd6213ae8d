"""Forward passes over a ``SequenceBatch``: what each role computes from a model.

Positions come from the attention mask, so left-padded prompts see the same positions as
unpadded ones. Response position ``t`` is predicted by the hidden state one step before it.
"""

from __future__ import annotations

import torch

from rlhf_ray.algorithms import logprobs_and_entropy_from_logits, logprobs_from_logits
from rlhf_ray.data import SequenceBatch


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _predicting_response(batch: SequenceBatch) -> torch.Tensor:
    """The indices [R] of the positions of a [B, P + R] batch that predict its R response tokens."""
    length = batch.sequences.shape[1]
    return torch.arange(length - batch.response_length - 1, length - 1, device=batch.sequences.device)


def _model_inputs(batch: SequenceBatch) -> dict:
    return {
        "input_ids": batch.sequences,
        "attention_mask": batch.attention_mask,
        "position_ids": position_ids(batch.attention_mask),
        "use_cache": False,
    }


def _response_logits(model: torch.nn.Module, batch: SequenceBatch, temperature: float) -> torch.Tensor:
    """[B, R, V] logits predicting each response token (the LM head runs on those positions only),
    divided by the sampling ``temperature``: the distribution the responses were drawn from."""
    # An index, not a slice: the LM head then multiplies gathered (contiguous) hidden states in one matrix
    # product; on a sliced view torch copies the head's weight once per row (bf16 on CPU: 16 of a 75 ms
    # reference forward over 128 rows).
    logits = model(**_model_inputs(batch), logits_to_keep=_predicting_response(batch)).logits
    return logits if temperature == 1.0 else logits.float() / temperature


def _response_tokens(batch: SequenceBatch) -> torch.Tensor:
    return batch.sequences[:, -batch.response_length :]


def response_logprobs(model: torch.nn.Module, batch: SequenceBatch, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs [B, R] of the response tokens under softmax(logits / temperature)."""
    logits = _response_logits(model, batch, temperature)
    return logprobs_from_logits(logits, _response_tokens(batch)) * batch.response_mask


def response_logprobs_and_entropy(
    model: torch.nn.Module, batch: SequenceBatch, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs [B, R] of the response tokens, and the entropy [B, R] there, both of
    softmax(logits / temperature)."""
    logits = _response_logits(model, batch, temperature)
    logprobs, entropy = logprobs_and_entropy_from_logits(logits, _response_tokens(batch))
    return logprobs * batch.response_mask, entropy * batch.response_mask


def response_values(model: torch.nn.Module, batch: SequenceBatch) -> torch.Tensor:
    """Per-token values [B, R] from a token-classification model with one label."""
    values = model(**_model_inputs(batch)).logits.squeeze(-1)
    return values[:, _predicting_response(batch)].float() * batch.response_mask


def sequence_scores(model: torch.nn.Module, batch: SequenceBatch) -> torch.Tensor:
    """One score [B] per sequence, read at its last real token (robust to either padding side)."""
    hidden = model.base_model(**_model_inputs(batch)).last_hidden_state
    columns = torch.arange(batch.sequences.shape[1], device=batch.sequences.device)
    last = (columns * batch.attention_mask.long()).argmax(-1)
    rows = torch.arange(len(batch), device=batch.sequences.device)
    return model.score(hidden[rows, last]).squeeze(-1).float()


def pair_scores(model: torch.nn.Module, pairs) -> torch.Tensor:
    """[N, 2] scores of the chosen (column 0) and rejected (column 1) sequences of a ``PreferenceBatch``,
    from one forward pass over both."""
    scores = sequence_scores(model, pairs.both())
    return torch.stack([scores[: len(pairs)], scores[len(pairs) :]], dim=-1)


def pair_logprobs(model: torch.nn.Module, pairs) -> torch.Tensor:
    """[N, 2] log-probs of the chosen (column 0) and rejected (column 1) responses of a ``PreferenceBatch``,
    each summed over its tokens, from one forward pass over both."""
    logprobs = response_logprobs(model, pairs.both()).sum(-1)
    return torch.stack([logprobs[: len(pairs)], logprobs[len(pairs) :]], dim=-1)
