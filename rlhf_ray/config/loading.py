"""Load a config from YAML plus dotted command-line overrides, and report every problem with where
it comes from: the file and line, or the override that set it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rlhf_ray.config.checks import check_config, check_stage
from rlhf_ray.config.schema import Config


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    """Dotted path of the field, e.g. ``rollout.temperature``."""
    message: str
    where: str
    """``file:line``, ``override 'a.b=c'``, or ``default``."""

    def __str__(self) -> str:
        return f"{self.where}: {self.path or '<root>'}: {self.message}"


EXIT_CONFIG_ERROR = 2
"""Exit status of every ``rlhf-ray`` command given a config (or data) it cannot use."""
EXIT_RESUMABLE = 75
"""Exit status of a run stopped by a signal (preemption, Ctrl-C) at a checkpoint: running the same
command again resumes it (``EX_TEMPFAIL``)."""


class ConfigError(ValueError):
    """A config that cannot run; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[ConfigProblem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid config ({len(self.problems)} problem(s)):\n{lines}")


def load_config(path: str | Path, overrides: Sequence[str] = (), stages: Sequence[str] = ()) -> Config:
    """Read ``path``, apply ``overrides`` (``a.b.c=value``, value parsed as YAML), validate, including
    the checks of the training ``stages`` about to run (``sft``, ``reward_model``, ``dpo``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigProblem("", f"cannot read the config: {exc.strerror}", str(path))]) from exc
    try:
        raw = yaml.safe_load(text)
        locations = {"": str(path), **_yaml_locations(yaml.compose(text), str(path))}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([ConfigProblem("", f"not valid YAML: {exc}", where)]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem("", "the top level must be a mapping of sections", f"{path}:1")])
    for override in overrides:
        dotted = apply_override(raw, override)
        locations[dotted] = f"override {override!r}"
    return validate_config(raw, locations, stages)


def validate_config(raw: dict[str, Any], locations: dict[str, str] | None = None, stages: Sequence[str] = ()) -> Config:
    """Validate a plain dict: the schema first, then the cross-field checks (and those of ``stages``)."""
    locations = locations or {}
    cfg = validate_schema(raw, locations)
    issues = check_config(cfg) + [issue for stage in stages for issue in check_stage(cfg, stage)]
    if issues:
        raise ConfigError([ConfigProblem(i.path, i.message, _where(i.path, locations)) for i in issues])
    return cfg


def validate_schema(raw: dict[str, Any], locations: dict[str, str] | None = None) -> Config:
    """Validate a plain dict against the schema alone, without the cross-field checks of a training run
    (for commands that only sample from a model)."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_problem_from_pydantic(err, locations or {}) for err in exc.errors()]) from None


def dump_config(cfg: Config) -> str:
    """The fully resolved config as YAML (every default filled in)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def apply_override(raw: dict[str, Any], override: str) -> str:
    key, sep, value = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            [ConfigProblem(key, "an override must look like 'section.field=value'", f"override {override!r}")]
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(key, f"value is not valid YAML: {exc}", f"override {override!r}")]) from exc
    *parents, leaf = key.split(".")
    node = raw
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parents[: depth + 1])
            raise ConfigError(
                [
                    ConfigProblem(
                        prefix, f"is a value, not a section, so {key!r} cannot be set", f"override {override!r}"
                    )
                ]
            )
        node = child
    node[leaf] = parsed
    return key


def _problem_from_pydantic(err: dict[str, Any], locations: dict[str, str]) -> ConfigProblem:
    path = ".".join(str(part) for part in err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against `rlhf-ray validate` output)"
    elif err["type"] == "missing":
        message = "is required"
    elif "input" in err and not isinstance(err["input"], dict):
        message = f"{message} (got {err['input']!r})"
    return ConfigProblem(path, message, _where(path, locations))


def _where(path: str, locations: dict[str, str]) -> str:
    """The location of ``path`` or, for a default, of the closest section the config writes."""
    if path in locations:
        return locations[path]
    parts = path.split(".")
    while parts:
        parts.pop()
        parent = ".".join(parts)
        if parent in locations:
            return f"{locations[parent]} (default)"
    return "default"


def _yaml_locations(node: yaml.Node | None, filename: str, prefix: str = "") -> dict[str, str]:
    """Map each dotted key path in a composed YAML tree to ``file:line`` of its key."""
    locations: dict[str, str] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            locations[path] = f"{filename}:{key_node.start_mark.line + 1}"
            locations.update(_yaml_locations(value_node, filename, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}"
            locations[path] = f"{filename}:{item.start_mark.line + 1}"
            locations.update(_yaml_locations(item, filename, path))
    return locations
