"""The ``rlhf-ray`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rlhf_ray.config import Config, ConfigError, dump_config, load_config

EXIT_CONFIG_ERROR = 2


def _load(args: argparse.Namespace) -> Config | None:
    """The config, or None after printing every problem with it."""
    try:
        return load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return None


def _validate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    print(dump_config(cfg), end="")
    print(f"# {args.config}: valid; roles: {', '.join(cfg.active_roles())}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.data.prompts import DataError
    from rlhf_ray.trainers.ppo import train

    try:
        result = train(cfg)
    except DataError as exc:
        print(f"data error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(f"trained {result.steps} steps; metrics: {result.metrics_file}")
    if result.last_checkpoint:
        print(f"last checkpoint: {result.last_checkpoint}")
    if result.export_dir:
        print(f"policy exported to {result.export_dir} (loads with transformers and vLLM)")
    if result.wandb_dir and cfg.logging.wandb.mode == "offline":
        print(f"W&B run: {Path(result.wandb_dir).parent} (upload with `wandb sync {Path(result.wandb_dir).parent}`)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-ray", description="Distributed RLHF on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate", help="check a config and print it fully resolved; exit 2 listing every problem"
    )
    validate.add_argument("config", help="YAML experiment file")
    validate.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rollout.temperature=0.7")
    validate.set_defaults(run=_validate)
    train = commands.add_parser("train", help="run PPO (RLHF) as the config says; resumes from its checkpoints")
    train.add_argument("config", help="YAML experiment file")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_steps=5")
    train.set_defaults(run=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
