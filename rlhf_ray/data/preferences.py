"""Preference pairs: a prompt with a chosen and a rejected response (and optionally a margin),
tokenised and checked when loaded; and the batch of pairs the reward-model trainer passes around."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from rlhf_ray.config.schema import PreferenceDataConfig
from rlhf_ray.data.batch import SequenceBatch, pack_sequences
from rlhf_ray.data.records import DataError, LoadedRows, load_rows, read_records, require, require_text
from rlhf_ray.data.rendering import render_exchange


@dataclass(frozen=True)
class PreferencePair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    margin: float | None


def load_preferences(
    path: str, data: PreferenceDataConfig, tokenizer: PreTrainedTokenizerBase, strict_field: str
) -> LoadedRows[PreferencePair]:
    return load_rows(read_records(path), lambda row: _pair(row, data, tokenizer), data.strict, path, strict_field)


def _response_text(row: dict, key: str) -> str:
    """A response given as a string or as a single assistant message."""
    value = require_text(row, key)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("content", "")
    if not isinstance(value, str):
        raise DataError(f"not text: {key!r} must be a string or one assistant message")
    if not value.strip():
        raise DataError(f"empty text: {key!r} is empty")
    return value


def _pair(row: dict, data: PreferenceDataConfig, tokenizer: PreTrainedTokenizerBase) -> PreferencePair:
    context = require_text(row, data.prompt_key)
    chosen, rejected = _response_text(row, data.chosen_key), _response_text(row, data.rejected_key)
    if chosen.strip() == rejected.strip():
        raise DataError(f"chosen == rejected: {data.chosen_key!r} and {data.rejected_key!r} are the same text")
    margin = None
    if data.margin_key is not None:
        value = require(row, data.margin_key, "margin")
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise DataError(f"bad margin: {data.margin_key!r} is {value!r}, not a finite number")
        margin = float(value)
    prompt_ids, chosen_ids = render_exchange(tokenizer, context, chosen, data.prompt_key, data.apply_chat_template)
    _, rejected_ids = render_exchange(tokenizer, context, rejected, data.prompt_key, data.apply_chat_template)
    length = len(prompt_ids) + max(len(chosen_ids), len(rejected_ids))
    if length > data.max_length:
        raise DataError(f"too long: {length} tokens, max_length is {data.max_length}")
    return PreferencePair(prompt_ids, chosen_ids, rejected_ids, margin)


@dataclass
class PreferenceBatch:
    """Pairs as two sequence batches of the same shape, row ``i`` of each from pair ``i``. Behaves like
    a ``SequenceBatch`` where role groups need it (length, ``select``, ``chunks``, ``to``)."""

    chosen: SequenceBatch
    rejected: SequenceBatch
    margin: torch.Tensor | None = None
    """[N] margins, or None."""

    def __len__(self) -> int:
        return len(self.chosen)

    def both(self) -> SequenceBatch:
        """Chosen rows then rejected rows, for one forward pass."""
        return SequenceBatch.concat([self.chosen, self.rejected])

    def select(self, index: torch.Tensor | Sequence[int]) -> PreferenceBatch:
        index = torch.as_tensor(index, dtype=torch.long)
        margin = None if self.margin is None else self.margin[index]
        return PreferenceBatch(self.chosen.select(index), self.rejected.select(index), margin)

    def chunks(self, sizes: Sequence[int]) -> list[PreferenceBatch]:
        bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
        return [self.select(range(start, stop)) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]

    def to(self, device: torch.device | str) -> PreferenceBatch:
        margin = None if self.margin is None else self.margin.to(device)
        return PreferenceBatch(self.chosen.to(device), self.rejected.to(device), margin)


def preference_batch(pairs: Sequence[PreferencePair], pad_token_id: int) -> PreferenceBatch:
    prompts = [p.prompt_ids for p in pairs]
    both = pack_sequences(
        prompts + prompts, [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs], pad_token_id
    )
    chosen, rejected = both.chunks([len(pairs), len(pairs)])
    margins = [p.margin for p in pairs]
    margin = None if any(m is None for m in margins) else torch.tensor(margins, dtype=torch.float32)
    return PreferenceBatch(chosen, rejected, margin)
