"""The CPU demo's reward: a rule a person can read at a glance."""

from __future__ import annotations

from collections.abc import Sequence

TARGET_WORDS = 4


def concise(prompts: Sequence[str], responses: Sequence[str], labels: Sequence[str | None]) -> list[float]:
    """1 for an answer of exactly ``TARGET_WORDS`` words, a twelfth less for every word more or
    fewer (never below 0): the policy is rewarded for answering in about four words and stopping."""
    return [max(0.0, 1.0 - abs(len(response.split()) - TARGET_WORDS) / 12) for response in responses]
