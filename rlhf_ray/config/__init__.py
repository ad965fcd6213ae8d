"""Typed configuration: the schema, YAML loading with overrides, and cross-field checks."""

from rlhf_ray.config.checks import ConfigIssue, check_config
from rlhf_ray.config.loading import (
    EXIT_CONFIG_ERROR,
    EXIT_RESUMABLE,
    ConfigError,
    ConfigProblem,
    dump_config,
    load_config,
    validate_config,
)
from rlhf_ray.config.schema import ROLE_NAMES, Config

__all__ = [
    "EXIT_CONFIG_ERROR",
    "EXIT_RESUMABLE",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "ConfigProblem",
    "ROLE_NAMES",
    "check_config",
    "dump_config",
    "load_config",
    "validate_config",
]
