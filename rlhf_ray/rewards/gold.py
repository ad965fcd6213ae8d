"""Gold rewards: the hidden "true" preferences of the simulated labellers, readable at a glance."""

from __future__ import annotations

import re
from collections.abc import Sequence

CHEERFUL_WORDS = frozenset("happy bright warm gentle brave clever".split())
GLOOMY_WORDS = frozenset("sad dark cold strange heavy slow".split())


def cheerful(prompts: Sequence[str], responses: Sequence[str], labels: Sequence[str | None]) -> list[float]:
    """The labellers like cheerful answers: (cheerful words - gloomy words) / (cheerful + gloomy words),
    from -1 (only gloomy) to 1 (only cheerful); 0 for an answer with neither or as many of each."""
    return [_cheerfulness(response) for response in responses]


def _cheerfulness(text: str) -> float:
    words = re.findall(r"[a-z]+", text.lower())
    up = sum(word in CHEERFUL_WORDS for word in words)
    down = sum(word in GLOOMY_WORDS for word in words)
    return (up - down) / max(1, up + down)
