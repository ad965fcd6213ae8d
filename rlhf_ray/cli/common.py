"""What every ``rlhf-ray`` command shares: loading the config, the errors a run reports as bad input,
and declaring a command."""

from __future__ import annotations

import argparse
import os
import sys

from rlhf_ray.config import Config, ConfigError, load_config
from rlhf_ray.config.debug import load_debug_config


def load(args: argparse.Namespace, stages: tuple[str, ...] = (), debug: bool = False) -> Config | None:
    """The config, or None after printing every problem with it (the ``stages``' checks included);
    ``debug``: shrunk to a local debug run (``rlhf_ray.config.debug``)."""
    try:
        if debug:
            return load_debug_config(args.config, args.overrides)
        return load_config(args.config, args.overrides, stages)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return None


def name_the_accelerator() -> None:
    """Tell DeepSpeed, which the driver imports, the accelerator it would otherwise guess aloud (a warning
    on every run of a CPU machine); the role actors are told theirs by the device profile."""
    import torch

    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")


def input_errors() -> tuple[type[Exception], ...]:
    """What a run raises, before any actor starts, for input it cannot use: bad data rows, a missing or
    unusable model folder, a cluster or reward server that does not answer, a checkpoint folder it cannot
    write. (Imported here, when a run starts, so that ``validate`` stays light.)"""
    from rlhf_ray.data.records import DataError
    from rlhf_ray.distributed.cluster import ClusterUnreachableError
    from rlhf_ray.models.checks import ModelFolderError
    from rlhf_ray.rewards.http import RewardServerUnreachable
    from rlhf_ray.trainers.checkpoint import CheckpointWriteError

    return (
        DataError,
        FileNotFoundError,
        ClusterUnreachableError,
        ModelFolderError,
        CheckpointWriteError,
        RewardServerUnreachable,
    )


def add_command(commands, name: str, help_text: str, run) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help_text)
    command.add_argument("config", help="YAML experiment file")
    command.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_steps=5")
    command.set_defaults(run=run)
    return command
