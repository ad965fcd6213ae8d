"""Prompt sets for PPO: read, validated and tokenised once, before any actor starts.

A row is a mapping with the prompt under ``data.prompt_key`` (a string, or chat messages when
``data.apply_chat_template``) and optionally a label under ``data.label_key``; its other columns are
kept with the prompt and passed to reward functions by name. A bad row (unreadable,
missing key, empty, too long after tokenisation) fails loading with its file and line in strict mode,
or is skipped and counted in lenient mode: it never surfaces mid-training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from rlhf_ray.config.schema import DataConfig
from rlhf_ray.data.records import (
    DataError,
    LoadedRows,
    as_messages,
    load_rows,
    read_records,
    require,
    require_text,
    token_ids,
)
from rlhf_ray.data.rendering import render_prompt
from rlhf_ray.data.synthetic import synthetic_prompts

__all__ = ["Prompt", "PromptSet", "load_prompts"]


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    text: str
    label: str | None
    columns: dict[str, Any] = field(default_factory=dict)
    """The row's other columns (all but the prompt and the label)."""
    messages: list[dict[str, str]] = field(default_factory=list)
    """The prompt as chat messages (a string prompt: one user message), what a conversation starts from."""


PromptSet = LoadedRows[Prompt]


def load_prompts(path: str | None, data: DataConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> PromptSet:
    """The prompts of ``path`` (None: the built-in synthetic set), tokenised and checked."""
    rows = read_records(path) if path is not None else synthetic_rows(seed)
    return load_rows(
        rows, lambda row: _prompt(row, data, tokenizer), data.strict, path or "the synthetic prompt set", "data.strict"
    )


def synthetic_rows(seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The built-in synthetic prompts as rows ``{"prompt": ...}``, each named for messages."""
    for index, text in enumerate(synthetic_prompts(seed)):
        yield f"synthetic prompt {index}", {"prompt": text}


def _prompt(row: dict, data: DataConfig, tokenizer: PreTrainedTokenizerBase) -> Prompt:
    content = require_text(row, data.prompt_key)
    text = render_prompt(tokenizer, content, data.prompt_key, data.apply_chat_template)
    ids = token_ids(tokenizer, text)
    if len(ids) > data.max_prompt_length:
        raise DataError(f"too long: {len(ids)} tokens, data.max_prompt_length is {data.max_prompt_length}")
    label = None if data.label_key is None else str(require(row, data.label_key, "label"))
    columns = {key: value for key, value in row.items() if key not in (data.prompt_key, data.label_key)}
    return Prompt(ids, text, label, columns, as_messages(content, data.prompt_key))
