"""Importing what a config names: user modules that register their own algorithm entries (imported
before the config is checked), and ``module:name`` objects."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any


def import_object(spec: str) -> Any:
    """The object a ``module:name`` string names (a reward function, a role's worker class)."""
    module_name, _, name = spec.partition(":")
    return getattr(importlib.import_module(module_name), name)


def import_plugins(modules: Sequence[str]) -> dict[int, str]:
    """Import every module of ``algorithm.plugins``; returns why each one that failed did, by position."""
    failures = {}
    for position, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except Exception as exc:  # a plugin may fail in any way while registering; report it, do not crash
            failures[position] = f"cannot import plugin module {module!r}: {type(exc).__name__}: {exc}"
    return failures


def require_plugins(modules: Sequence[str]) -> None:
    """Import every module of ``algorithm.plugins`` where the entries they register are looked up (the
    role actors); the config check has already reported any that fails."""
    failures = import_plugins(modules)
    if failures:
        raise ImportError("; ".join(failures.values()))
