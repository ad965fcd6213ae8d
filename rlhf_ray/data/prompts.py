"""Prompt sets for PPO: read, validated and tokenised once, before any actor starts.

A row is a mapping with the prompt under ``data.prompt_key`` (a string, or chat messages when
``data.apply_chat_template``) and optionally a label under ``data.label_key``. A bad row (unreadable,
missing key, empty, too long after tokenisation) fails loading with its file and line in strict mode,
or is skipped and counted in lenient mode: it never surfaces mid-training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from rlhf_ray.config.schema import DataConfig
from rlhf_ray.data.synthetic import synthetic_prompts


class DataError(ValueError):
    """A data file that cannot be used as it is."""


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    text: str
    label: str | None


@dataclass
class PromptSet:
    prompts: list[Prompt]
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows skipped in lenient mode, by reason."""

    def __len__(self) -> int:
        return len(self.prompts)


def load_prompts(path: str | None, data: DataConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> PromptSet:
    """The prompts of ``path`` (None: the built-in synthetic set), tokenised and checked."""
    rows = _records(Path(path)) if path is not None else _synthetic_rows(seed)
    prompt_set = PromptSet([])
    for where, row in rows:
        try:
            prompt_set.prompts.append(_prompt(row, data, tokenizer))
        except DataError as exc:
            if data.strict:
                raise DataError(f"{where}: {exc} (set data.strict: false to skip such rows)") from None
            reason = str(exc).split(":")[0]
            prompt_set.skipped[reason] = prompt_set.skipped.get(reason, 0) + 1
    if not prompt_set.prompts:
        raise DataError(f"{path or 'the synthetic prompt set'}: no usable prompt")
    return prompt_set


def _synthetic_rows(seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    for index, text in enumerate(synthetic_prompts(seed)):
        yield f"synthetic prompt {index}", {"prompt": text}


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, row) pairs from a JSONL, JSON or Parquet file or a saved HF ``datasets`` folder."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        from datasets import load_from_disk

        for index, row in enumerate(load_from_disk(str(path))):
            yield f"{path} row {index}", row
    elif path.suffix == ".jsonl":
        with path.open() as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{path}:{number}", _Unreadable(f"invalid JSON: {exc.msg}")
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: a JSON prompt file holds a list of rows")
        for index, row in enumerate(rows):
            yield f"{path} row {index}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path} row {index}", row
    else:
        raise DataError(f"{path}: unknown format; use .jsonl, .json, .parquet or a saved datasets folder")


@dataclass(frozen=True)
class _Unreadable:
    problem: str


def _prompt(row: Any, data: DataConfig, tokenizer: PreTrainedTokenizerBase) -> Prompt:
    if isinstance(row, _Unreadable):
        raise DataError(row.problem)
    if not isinstance(row, dict):
        raise DataError(f"not a mapping: a row must be an object with key {data.prompt_key!r}")
    if data.prompt_key not in row:
        raise DataError(f"missing key: no {data.prompt_key!r} (keys: {sorted(row)})")
    content = row[data.prompt_key]
    if not content or (isinstance(content, str) and not content.strip()):
        raise DataError(f"empty prompt: {data.prompt_key!r} is empty")
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    if data.apply_chat_template:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    elif isinstance(content, str):
        text = content
    else:
        raise DataError(f"chat messages need data.apply_chat_template: {data.prompt_key!r} is not a string")
    token_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(token_ids) > data.max_prompt_length:
        raise DataError(f"too long: {len(token_ids)} tokens, data.max_prompt_length is {data.max_prompt_length}")
    label = None
    if data.label_key is not None:
        if data.label_key not in row:
            raise DataError(f"missing key: no label {data.label_key!r}")
        label = str(row[data.label_key])
    return Prompt(token_ids, text, label)
