"""The built-in prompt set of the CPU demo and the tests: short requests, generated from a seed."""

from __future__ import annotations

import random

SUBJECTS = "cats dogs rivers trains apples stars songs cities gardens books".split()
_ASKS = (
    "Tell me about {}.",
    "How many {} are there?",
    "Write a line about {}.",
    "What do you know about {}?",
    "Count the {}.",
    "Describe the {} you see.",
)


def synthetic_prompts(seed: int, count: int = 512) -> list[str]:
    """``count`` short prompts; the same list for the same seed."""
    rng = random.Random(seed)
    return [rng.choice(_ASKS).format(rng.choice(SUBJECTS)) for _ in range(count)]
