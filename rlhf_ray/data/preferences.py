"""Preference pairs: a prompt with a chosen and a rejected response (and optionally a margin), or every
pair a ranking of a prompt's responses orders, tokenised and checked when loaded; and the batch of pairs
the reward-model trainer passes around."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from rlhf_ray.config.schema import PreferenceDataConfig
from rlhf_ray.data.batch import SequenceBatch, pack_sequences
from rlhf_ray.data.rankings import check_ranking, ordered_pairs
from rlhf_ray.data.records import DataError, LoadedRows, load_rows, read_records, require, require_text
from rlhf_ray.data.rendering import render_exchange


@dataclass(frozen=True)
class PreferencePair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    margin: float | None
    weight: float = 1.0
    """The pair's weight in the loss: 1 / (the pairs of its ranking), 1 for a row that is one pair."""


@dataclass(frozen=True)
class Excluded:
    """A row left out by rule (a flagged or skipped ranking, or one that ties everything), and why."""

    why: str


def load_preferences(
    path: str, data: PreferenceDataConfig, tokenizer: PreTrainedTokenizerBase, strict_field: str
) -> LoadedRows[PreferencePair]:
    """The pairs of ``path``: one per chosen / rejected row, every ordered pair of a ranking row."""
    rows = load_rows(read_records(path), lambda row: _row_pairs(row, data, tokenizer), data.strict, path, strict_field)
    pairs = [pair for item in rows.items if not isinstance(item, Excluded) for pair in item]
    if not pairs:
        raise DataError(f"{path}: no usable row")
    excluded = Counter(item.why for item in rows.items if isinstance(item, Excluded))
    return LoadedRows(pairs, rows.skipped, dict(excluded))


def _row_pairs(
    row: dict, data: PreferenceDataConfig, tokenizer: PreTrainedTokenizerBase
) -> list[PreferencePair] | Excluded:
    if data.ranking_key in row:
        return _ranking_pairs(row, data, tokenizer)
    return [_pair(row, data, tokenizer)]


def _response_text(value: object, key: str) -> str:
    """A response given as a string or as a single assistant message."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("content", "")
    if not isinstance(value, str):
        raise DataError(f"not text: {key!r} must be a string or one assistant message")
    if not value.strip():
        raise DataError(f"empty text: {key!r} is empty")
    return value


def _pair(row: dict, data: PreferenceDataConfig, tokenizer: PreTrainedTokenizerBase) -> PreferencePair:
    context = require_text(row, data.prompt_key)
    chosen = _response_text(require_text(row, data.chosen_key), data.chosen_key)
    rejected = _response_text(require_text(row, data.rejected_key), data.rejected_key)
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
    _check_length(len(prompt_ids) + max(len(chosen_ids), len(rejected_ids)), data)
    return PreferencePair(prompt_ids, chosen_ids, rejected_ids, margin)


def _ranking_pairs(
    row: dict, data: PreferenceDataConfig, tokenizer: PreTrainedTokenizerBase
) -> list[PreferencePair] | Excluded:
    """Every pair the row's ranking orders, each weighted 1 / (their number). Responses with the same
    text are tied whatever the ranking says: such a pair teaches nothing but noise."""
    if row.get(data.flag_key):
        return Excluded("flagged")
    if row[data.ranking_key] is None:
        return Excluded("skipped")
    responses = require(row, data.responses_key, "responses")
    if not isinstance(responses, list) or len(responses) < 2:
        raise DataError(f"bad responses: {data.responses_key!r} must be a list of at least two responses")
    texts = [_response_text(response, data.responses_key) for response in responses]
    ranking = check_ranking(row[data.ranking_key], len(texts))
    ordered = [(b, w) for b, w in ordered_pairs(ranking) if texts[b].strip() != texts[w].strip()]
    if not ordered:
        return Excluded("all_tied")
    context = require_text(row, data.prompt_key)
    exchanges = [render_exchange(tokenizer, context, t, data.prompt_key, data.apply_chat_template) for t in texts]
    prompt_ids = exchanges[0][0]
    _check_length(len(prompt_ids) + max(len(ids) for _, ids in exchanges), data)
    weight = 1.0 / len(ordered)
    return [PreferencePair(prompt_ids, exchanges[b][1], exchanges[w][1], None, weight) for b, w in ordered]


def _check_length(length: int, data: PreferenceDataConfig) -> None:
    if length > data.max_length:
        raise DataError(f"too long: {length} tokens, max_length is {data.max_length}")


@dataclass
class PreferenceBatch:
    """Pairs as two sequence batches of the same shape, row ``i`` of each from pair ``i``. Behaves like
    a ``SequenceBatch`` where role groups need it (length, ``select``, ``chunks``, ``to``)."""

    chosen: SequenceBatch
    rejected: SequenceBatch
    weight: torch.Tensor
    """[N] each pair's weight in the loss (``PreferencePair.weight``)."""
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
        return PreferenceBatch(self.chosen.select(index), self.rejected.select(index), self.weight[index], margin)

    def chunks(self, sizes: Sequence[int]) -> list[PreferenceBatch]:
        bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
        return [self.select(range(start, stop)) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]

    def to(self, device: torch.device | str) -> PreferenceBatch:
        margin = None if self.margin is None else self.margin.to(device)
        return PreferenceBatch(self.chosen.to(device), self.rejected.to(device), self.weight.to(device), margin)


def preference_batch(pairs: Sequence[PreferencePair], pad_token_id: int) -> PreferenceBatch:
    prompts = [p.prompt_ids for p in pairs]
    both = pack_sequences(
        prompts + prompts, [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs], pad_token_id
    )
    chosen, rejected = both.chunks([len(pairs), len(pairs)])
    margins = [p.margin for p in pairs]
    margin = None if any(m is None for m in margins) else torch.tensor(margins, dtype=torch.float32)
    weight = torch.tensor([p.weight for p in pairs], dtype=torch.float32)
    return PreferenceBatch(chosen, rejected, weight, margin)
