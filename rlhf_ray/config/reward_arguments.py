"""How a reward function is called, and whether its parameters can all be filled.

A reward function is called by keyword with one list per argument, one entry per sample: ``prompts``,
``responses`` (also passed as ``completions``; in a conversation, the policy's last answer), ``labels``
(None where a prompt has no label), ``messages`` (the whole conversation as chat messages, the prompt's
and the response's included), and every other column of the prompt rows by its name. It is passed the
names it has parameters for, or all of them when it takes ``**kwargs``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Collection
from pathlib import Path

from rlhf_ray.config.schema import DataConfig

STANDARD_ARGUMENTS = ("prompts", "responses", "completions", "labels", "messages")

_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def accepted_arguments(function: Callable) -> frozenset[str] | None:
    """The argument names ``function`` has parameters for; None when it takes any (``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind in _BY_KEYWORD)


def unfillable_parameters(function: Callable, columns: Collection[str] | None) -> list[str]:
    """Why some required parameter of ``function`` would get no argument, given the prompt rows'
    other ``columns`` (None: not known before the prompts load, so any name may be one)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError) as exc:
        return [f"its signature cannot be read: {exc}"]
    required = [p for p in parameters if p.default is p.empty]
    problems = [
        f"parameter {p.name!r} is positional-only, but a reward function is called by keyword "
        f"({', '.join(STANDARD_ARGUMENTS)}, and the prompt rows' columns)"
        for p in required
        if p.kind is p.POSITIONAL_ONLY
    ]
    if columns is not None:
        known = set(STANDARD_ARGUMENTS) | set(columns)
        listed = ", ".join(sorted(columns)) if columns else "none"
        problems += [
            f"parameter {p.name!r} cannot be filled: it is none of {', '.join(STANDARD_ARGUMENTS)}, "
            f"nor a column of the prompt rows (their other columns: {listed})"
            for p in required
            if p.kind in _BY_KEYWORD and p.name not in known
        ]
    return problems


def prompt_columns(data: DataConfig) -> set[str] | None:
    """The prompt rows' other columns (all but ``prompt_key`` and ``label_key``): none for the built-in
    synthetic prompts, those of a JSONL file's first row or of a Parquet file's schema; None (not known
    before the prompts load) for other files, or a file that cannot be read yet."""
    if data.train_path is None:
        return set()
    path = Path(data.train_path)
    try:
        names = _parquet_columns(path) if path.suffix == ".parquet" else _first_jsonl_row_keys(path)
    except (OSError, ValueError):
        return None
    return None if names is None else set(names) - {data.prompt_key, data.label_key}


def _first_jsonl_row_keys(path: Path) -> list[str] | None:
    if path.suffix != ".jsonl" or not path.is_file():
        return None
    with path.open() as lines:
        first = next((line for line in lines if line.strip()), "null")
    row = json.loads(first)
    return list(row) if isinstance(row, dict) else None


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq  # only for a Parquet file: validating stays light

    return pq.read_schema(path).names
