"""Importing what a config names: user modules that register their own algorithm entries (imported
before the config is checked), and ``module:name`` objects."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any


class SpecError(ValueError):
    """A ``module:name`` string that does not name something callable."""


def import_callable(spec: str, kind: str) -> Any:
    """The callable a ``module:name`` string names, or a ``SpecError`` saying what is wrong (``kind``:
    what it should be, e.g. "function", "Class")."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise SpecError(f"{spec!r} is not of the form 'module:{kind}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"cannot import module {module_name!r}: {exc}") from exc
    found = getattr(module, name, None)
    if not callable(found):
        raise SpecError(f"module {module_name!r} has no {kind.lower()} {name!r}")
    return found


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
