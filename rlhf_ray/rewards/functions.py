"""Calling a reward function named ``module:function`` and checking what it returns.

A function that fails, returns the wrong number of values, or returns a non-finite value for a
sample raises ``RewardError`` naming the samples: a reward is never silently replaced by zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from rlhf_ray.config.plugins import import_object

RewardFunction = Callable[[Sequence[str], Sequence[str], Sequence[str | None]], Sequence[float]]


class RewardError(RuntimeError):
    """The reward of some samples could not be computed."""


def import_reward_function(spec: str) -> RewardFunction:
    return import_object(spec)


def call_reward_function(
    function: RewardFunction, name: str, texts: dict[str, list[str]], batch_size: int
) -> torch.Tensor:
    """[B] float32 rewards of the decoded ``prompt``, ``response`` (and optional ``label``) texts."""
    prompts, responses = texts.get("prompt"), texts.get("response")
    if prompts is None or responses is None:
        raise RewardError("a reward function needs the decoded prompt and response texts in the batch")
    labels = texts.get("label", [None] * batch_size)
    try:
        values = list(function(prompts, responses, labels))
    except Exception as exc:
        raise RewardError(f"reward function {name} failed on a batch of {batch_size}: {exc!r}") from exc
    if len(values) != batch_size:
        raise RewardError(f"reward function {name} returned {len(values)} values for {batch_size} samples")
    bad = [i for i, value in enumerate(values) if not _is_finite_number(value)]
    if bad:
        shown = "; ".join(f"sample {i}: {values[i]!r} for response {responses[i][:60]!r}" for i in bad[:5])
        raise RewardError(f"reward function {name} returned no finite number for {len(bad)} sample(s): {shown}")
    return torch.tensor(values, dtype=torch.float32)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
