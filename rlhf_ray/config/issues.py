"""A problem a config check finds, naming the field to change."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    """Dotted path of the field to change."""
    message: str
