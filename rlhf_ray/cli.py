"""The ``rlhf-ray`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rlhf_ray.config import EXIT_CONFIG_ERROR, EXIT_RESUMABLE, Config, ConfigError, dump_config, load_config
from rlhf_ray.config.debug import load_debug_config
from rlhf_ray.jobs.commands import add_job_commands

__all__ = ["EXIT_CONFIG_ERROR", "build_parser", "main"]


def _load(args: argparse.Namespace, stages: tuple[str, ...] = (), debug: bool = False) -> Config | None:
    """The config, or None after printing every problem with it (the ``stages``' checks included);
    ``debug``: shrunk to a local debug run (``rlhf_ray.config.debug``)."""
    try:
        if debug:
            return load_debug_config(args.config, args.overrides)
        return load_config(args.config, args.overrides, stages)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return None


def _input_errors() -> tuple[type[Exception], ...]:
    """What a run raises, before any actor starts, for input it cannot use: bad data rows, a missing or
    unusable model folder, a cluster that does not answer, a checkpoint folder it cannot write. (Imported
    here, when a run starts, so that ``validate`` stays light.)"""
    from rlhf_ray.data.records import DataError
    from rlhf_ray.distributed.cluster import ClusterUnreachableError
    from rlhf_ray.models.checks import ModelFolderError
    from rlhf_ray.trainers.checkpoint import CheckpointWriteError

    return DataError, FileNotFoundError, ClusterUnreachableError, ModelFolderError, CheckpointWriteError


def _validate(args: argparse.Namespace) -> int:
    cfg = _load(args, debug=args.debug)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    print(dump_config(cfg), end="")
    print(f"# {args.config}: valid; roles: {', '.join(cfg.active_roles())}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    cfg = _load(args, debug=args.debug)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.distributed.failures import RoleFailure, RunFailed
    from rlhf_ray.trainers.ppo import train

    try:
        result = train(cfg)
    except _input_errors() as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (RoleFailure, RunFailed) as exc:
        print(f"run failed: {exc}", file=sys.stderr)
        return 1
    if result.stopped_by is not None:
        where = result.last_checkpoint or "the beginning (no checkpoint was complete)"
        how = "the same command resumes" if cfg.checkpoint.resume == "auto" else "add checkpoint.resume=auto to resume"
        print(f"stopped by {result.stopped_by} after step {result.steps}; {how} from {where}", file=sys.stderr)
        return EXIT_RESUMABLE
    print(f"trained {result.steps} steps; metrics: {result.metrics_file}")
    if result.last_checkpoint:
        print(f"last checkpoint: {result.last_checkpoint}")
    if result.export_dir:
        print(f"policy exported to {result.export_dir} (loads with transformers and vLLM)")
    if result.wandb_dir and cfg.logging.wandb.mode == "offline":
        print(f"W&B run: {Path(result.wandb_dir).parent} (upload with `wandb sync {Path(result.wandb_dir).parent}`)")
    return 0


def _sft(args: argparse.Namespace) -> int:
    return _run_stage(args, "sft")


def _rm(args: argparse.Namespace) -> int:
    return _run_stage(args, "reward_model")


def _run_stage(args: argparse.Namespace, name: str) -> int:
    cfg = _load(args, (name,))
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.trainers.stages import RewardModelStage, SFTStage
    from rlhf_ray.trainers.supervised import run_stage

    stage = SFTStage(cfg) if name == "sft" else RewardModelStage(cfg)
    try:
        result = run_stage(stage)
    except _input_errors() as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    evaluation = "  ".join(f"{k} {v:.4f}" for k, v in result.final_metrics.items() if k.startswith("eval/"))
    print(f"{stage.job}: trained {result.steps} steps; {evaluation}; metrics: {result.metrics_file}")
    if result.export_dir:
        print(f"{stage.job}: model exported to {result.export_dir}")
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    cfg = _load(args, ("pipeline",))
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.trainers.pipeline import STAGES, run_pipeline

    force = set(STAGES[STAGES.index(args.force) :]) if args.force else set()
    try:
        result = run_pipeline(cfg, force)
    except _input_errors() as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(f"SFT model: {result.sft_model}\nreward model: {result.reward_model_dir}")
    if result.ppo is not None:
        print(f"PPO: trained {result.ppo.steps} steps; metrics: {result.ppo.metrics_file}")
        if result.ppo.export_dir:
            print(f"policy exported to {result.ppo.export_dir}")
    return 0


def _label(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    if cfg.labeller is None:
        print(f"{args.config}: labeller: not set; nothing to simulate", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    from rlhf_ray.data.simulated import simulate_labels

    files = simulate_labels(cfg.labeller, cfg.seed)
    for path in (files.sft_train, files.sft_eval, files.preferences_train, files.preferences_eval):
        print(path)
    return 0


def _add_command(commands, name: str, help_text: str, run) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help_text)
    command.add_argument("config", help="YAML experiment file")
    command.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_steps=5")
    command.set_defaults(run=run)
    return command


def _add_debug_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--debug",
        action="store_true",
        help="a few small steps of every role on this machine (CPU without a GPU), verbose, with Ray's debugger",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-ray", description="Distributed RLHF on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = _add_command(
        commands, "validate", "check a config and print it fully resolved; exit 2 listing every problem", _validate
    )
    _add_debug_flag(validate)
    train = _add_command(commands, "train", "run PPO (RLHF) as the config says; resumes from its checkpoints", _train)
    _add_debug_flag(train)
    _add_command(commands, "sft", "stage 1: supervised fine-tuning of the policy on demonstrations", _sft)
    _add_command(commands, "rm", "stage 2: train a reward model on preference pairs (Bradley-Terry)", _rm)
    pipeline = _add_command(
        commands, "pipeline", "SFT -> reward model -> PPO, each stage reading the previous one's model", _pipeline
    )
    pipeline.add_argument(
        "--force", choices=["sft", "rm", "ppo"], help="rerun this stage and every later one, even if their models exist"
    )
    _add_command(commands, "label", "write the simulated labellers' SFT and preference files", _label)
    add_job_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops collecting overrides at the first option: `train CONFIG --debug a.b=1` leaves `a.b=1` over.
    overrides = getattr(args, "overrides", None)
    if extra and (overrides is None or any(arg.startswith("-") for arg in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*overrides, *extra]
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
