"""Reading rows of a dataset file with their locations, and the strict / lenient rule for bad rows.

Every dataset (PPO prompts, SFT demonstrations, preference pairs) is a JSONL, JSON or Parquet file
or a saved HF ``datasets`` folder of mappings. A row that cannot be used (unreadable, missing key,
empty text, too long, ...) fails loading with its file and line in strict mode, or is skipped and
counted by reason in lenient mode: the data are validated when loaded, never mid-epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from transformers import PreTrainedTokenizerBase

Item = TypeVar("Item")


class DataError(ValueError):
    """A data file, or a row of one, that cannot be used as it is. The message starts with the
    problem's kind (``missing key``, ``empty text``, ...) before a colon."""


@dataclass(frozen=True)
class Unreadable:
    """A row that could not be parsed; it fails where a row would."""

    problem: str


@dataclass
class LoadedRows(Generic[Item]):
    items: list[Item]
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows skipped in lenient mode, by kind of problem."""
    excluded: dict[str, int] = field(default_factory=dict)
    """Rows left out by rule rather than for a problem (a flagged or skipped ranking), by why."""

    def __len__(self) -> int:
        return len(self.items)


def read_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(location, row) pairs of a JSONL, JSON or Parquet file or a saved HF ``datasets`` folder."""
    path = Path(path)
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
                    yield f"{path}:{number}", Unreadable(f"invalid JSON: {exc.msg}")
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: a JSON dataset file holds a list of rows")
        for index, row in enumerate(rows):
            yield f"{path} row {index}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path} row {index}", row
    else:
        raise DataError(f"{path}: unknown format; use .jsonl, .json, .parquet or a saved datasets folder")


def load_rows(
    rows: Iterable[tuple[str, Any]], parse: Callable[[dict], Item], strict: bool, what: str, strict_field: str
) -> LoadedRows[Item]:
    """Parse every row; a ``DataError`` from ``parse`` fails loading (strict) or skips the row
    (lenient). ``what`` names the dataset in errors, ``strict_field`` the setting that relaxes them."""
    loaded: LoadedRows[Item] = LoadedRows([])
    for where, row in rows:
        try:
            if isinstance(row, Unreadable):
                raise DataError(row.problem)
            if not isinstance(row, dict):
                raise DataError(f"not a mapping: a row must be an object, got {type(row).__name__}")
            loaded.items.append(parse(row))
        except DataError as exc:
            if strict:
                raise DataError(f"{where}: {exc} (set {strict_field}: false to skip such rows)") from None
            kind = str(exc).split(":")[0]
            loaded.skipped[kind] = loaded.skipped.get(kind, 0) + 1
    if not loaded.items:
        raise DataError(f"{what}: no usable row")
    return loaded


def require(row: dict, key: str, what: str = "") -> Any:
    """``row[key]``, or a ``missing key`` error listing the keys the row has."""
    if key not in row:
        raise DataError(f"missing key: no {what + ' ' if what else ''}{key!r} (keys: {sorted(row)})")
    return row[key]


def require_text(row: dict, key: str) -> Any:
    """A non-empty string (or non-empty chat messages) under ``key``."""
    content = require(row, key)
    if not content or (isinstance(content, str) and not content.strip()):
        raise DataError(f"empty text: {key!r} is empty")
    return content


def as_messages(content: str | list, key: str) -> list[dict[str, str]]:
    """A string as a one-turn user conversation, or chat messages as they are (checked)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list) or not all(
        isinstance(m, dict) and {"role", "content"} <= m.keys() for m in content
    ):
        raise DataError(f"bad messages: {key!r} must be a string or a list of {{role, content}} messages")
    return content


def token_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]
