"""Calling reward functions named ``module:function``, checking what they return, and combining several.

A reward function is called by keyword (``rlhf_ray.config.reward_arguments``): ``prompts``, ``responses``
(also as ``completions``), ``labels``, and the prompt rows' other columns by name. A function that fails,
returns the wrong number of values, or returns a non-finite value for a sample raises ``RewardError``
naming the samples: a reward is never silently replaced by zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlhf_ray.config.plugins import import_object
from rlhf_ray.config.reward_arguments import STANDARD_ARGUMENTS, accepted_arguments, unfillable_parameters
from rlhf_ray.config.schema import RewardConfig

RewardFunction = Callable[..., Sequence[float]]


class RewardError(RuntimeError):
    """The reward of some samples could not be computed."""


def import_reward_function(spec: str) -> RewardFunction:
    return import_object(spec)


def reward_arguments(texts: dict[str, list], columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Every keyword argument of a reward call, from a batch's decoded ``texts`` (``prompt``, ``response``,
    optional ``label`` and ``messages``) and the prompt rows' other ``columns``, one entry per sample."""
    prompts, responses = texts.get("prompt"), texts.get("response")
    if prompts is None or responses is None:
        raise RewardError("a reward function needs the decoded prompt and response texts in the batch")
    clashing = sorted(set(columns) & set(STANDARD_ARGUMENTS))
    if clashing:
        raise RewardError(
            f"the prompt rows' column {clashing[0]!r} has the name of a reward function argument: rename it "
            "(a label column is passed as labels: set data.label_key)"
        )
    labels = texts.get("label", [None] * len(responses))
    messages = texts.get("messages", [None] * len(responses))
    return {
        "prompts": prompts,
        "responses": responses,
        "completions": responses,
        "labels": labels,
        "messages": messages,
        **columns,
    }


def call_reward_function(
    function: RewardFunction, name: str, arguments: dict[str, list[Any]], batch_size: int
) -> torch.Tensor:
    """[B] float32 rewards: ``function`` called with the ``arguments`` (``reward_arguments``) it takes."""
    columns = set(arguments) - set(STANDARD_ARGUMENTS)
    unfillable = unfillable_parameters(function, columns)
    if unfillable:
        raise RewardError(f"reward function {name}: {'; '.join(unfillable)}")
    accepted = accepted_arguments(function)
    passed = arguments if accepted is None else {key: arguments[key] for key in accepted & arguments.keys()}
    try:
        values = list(function(**passed))
    except Exception as exc:
        raise RewardError(f"reward function {name} failed on a batch of {batch_size}: {exc!r}") from exc
    return checked_rewards(values, f"reward function {name}", arguments["responses"])


def checked_rewards(values: list[Any], source: str, responses: Sequence[str], first_sample: int = 0) -> torch.Tensor:
    """[B] float32 rewards from ``values``, one finite number for each of the B ``responses``; otherwise
    a ``RewardError`` naming ``source`` and the samples (numbered from ``first_sample``)."""
    if len(values) != len(responses):
        raise RewardError(f"{source} returned {len(values)} values for {len(responses)} samples")
    bad = [i for i, value in enumerate(values) if not is_finite_number(value)]
    if bad:
        shown = "; ".join(
            f"sample {first_sample + i}: {values[i]!r} for response {responses[i][:60]!r}" for i in bad[:5]
        )
        raise RewardError(f"{source} returned no finite number for {len(bad)} sample(s): {shown}")
    return torch.tensor(values, dtype=torch.float32)


@dataclass(frozen=True)
class RewardSum:
    """How the values of ``reward.functions`` make the reward: their weighted sum, clipped."""

    names: tuple[str, ...]
    """Each function's name in ``<section>/reward/<name>``."""
    weights: tuple[float, ...]
    clip: float | None

    @classmethod
    def of(cls, reward: RewardConfig) -> RewardSum:
        functions = reward.weighted_functions()
        return cls(tuple(f.metric_name for f in functions), tuple(f.weight for f in functions), reward.clip)

    def total(self, values: torch.Tensor) -> torch.Tensor:
        """[B] rewards from the [B, F] values of the F functions."""
        total = values @ torch.tensor(self.weights, dtype=values.dtype)
        return total if self.clip is None else total.clamp(-self.clip, self.clip)

    def means(self, values: torch.Tensor, section: str) -> dict[str, float]:
        """``<section>/reward/<name>``: each function's mean value (unweighted) over the [B, F] values."""
        return {f"{section}/reward/{name}": float(mean) for name, mean in zip(self.names, values.mean(0), strict=True)}


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
