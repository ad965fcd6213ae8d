"""Rewards for problems with a numeric answer."""

from __future__ import annotations

import re
from collections.abc import Sequence

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (``"1,000"`` reads as ``1000``), or None."""
    numbers = _NUMBER.findall(text.replace(",", ""))
    return numbers[-1] if numbers else None


def exact_match(prompts: Sequence[str], responses: Sequence[str], labels: Sequence[str | None]) -> list[float]:
    """1.0 where the response's last number equals the label's, else 0.0."""
    if labels is None or len(labels) != len(responses):
        raise ValueError("exact_match needs one label per response (set data.label_key)")
    rewards = []
    for response, label in zip(responses, labels, strict=True):
        if label is None:
            raise ValueError(f"exact_match needs a label for every prompt; response {response[:40]!r} has none")
        answer, expected = last_number(response), last_number(str(label))
        rewards.append(float(answer is not None and expected is not None and float(answer) == float(expected)))
    return rewards
