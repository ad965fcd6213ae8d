"""Checks of a multi-turn rollout's settings: an environment that imports and builds, and the chat
template its messages are rendered with."""

from __future__ import annotations

from rlhf_ray.config.issues import ConfigIssue
from rlhf_ray.config.plugins import SpecError, import_callable
from rlhf_ray.config.schema import Config


def check_environment(cfg: Config) -> list[ConfigIssue]:
    rollout = cfg.rollout
    if rollout.environment is None:
        issues = []
        if rollout.max_turns > 1:
            issues.append(
                ConfigIssue(
                    "rollout.environment",
                    f"is required when rollout.max_turns is {rollout.max_turns}: 'module:Class' of what replies "
                    "to the policy between its turns",
                )
            )
        if rollout.environment_args:
            issues.append(ConfigIssue("rollout.environment_args", "is set, but rollout.environment is not"))
        return issues
    if not cfg.data.apply_chat_template:
        return [
            ConfigIssue(
                "data.apply_chat_template",
                f"is false, but rollout.environment ({rollout.environment}) needs the chat template to render "
                "its messages between the policy's turns",
            )
        ]
    return _check_environment_class(rollout.environment, rollout.environment_args)


def _check_environment_class(spec: str, args: dict) -> list[ConfigIssue]:
    """A ``module:Class`` that imports and builds from ``args`` into an object with a ``reply`` method."""
    try:
        cls = import_callable(spec, "Class")
    except SpecError as exc:
        return [ConfigIssue("rollout.environment", str(exc))]
    try:
        environment = cls(**args)
    except Exception as exc:  # whatever the user's constructor raises, name the field that fed it
        return [ConfigIssue("rollout.environment_args", f"{spec} cannot be built from {args!r}: {exc!r}")]
    if not callable(getattr(environment, "reply", None)):
        return [ConfigIssue("rollout.environment", f"{spec} has no method reply(conversation)")]
    return []
