"""The ``rlhf-ray`` command: the training commands here, the others in modules of their own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rlhf_ray.cli.common import add_command, input_errors, load, name_the_accelerator
from rlhf_ray.cli.label_commands import add_label_commands
from rlhf_ray.cli.model_commands import add_model_commands
from rlhf_ray.config import EXIT_CONFIG_ERROR, EXIT_RESUMABLE, dump_config
from rlhf_ray.jobs.commands import add_job_commands

__all__ = ["EXIT_CONFIG_ERROR", "build_parser", "main"]


def _validate(args: argparse.Namespace) -> int:
    cfg = load(args, debug=args.debug)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    print(dump_config(cfg), end="")
    print(f"# {args.config}: valid; roles: {', '.join(cfg.active_roles())}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    cfg = load(args, debug=args.debug)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    name_the_accelerator()
    from rlhf_ray.distributed.failures import RoleFailure, RunFailed
    from rlhf_ray.trainers.conversations import EnvironmentFailure
    from rlhf_ray.trainers.ppo import train

    try:
        result = train(cfg)
    except input_errors() as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (RoleFailure, RunFailed, EnvironmentFailure) as exc:
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


def _dpo(args: argparse.Namespace) -> int:
    return _run_stage(args, "dpo")


def _run_stage(args: argparse.Namespace, name: str) -> int:
    cfg = load(args, (name,))
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.trainers.stages import STAGES
    from rlhf_ray.trainers.supervised import run_stage

    stage = STAGES[name](cfg)
    try:
        result = run_stage(stage)
    except input_errors() as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(_trained(stage.job, result))
    if result.export_dir:
        print(f"{stage.job}: model exported to {result.export_dir}")
    return 0


def _trained(job: str, result) -> str:
    """What a stage (a ``StageResult``) trained, with its final evaluation."""
    evaluation = "  ".join(f"{k} {v:.4f}" for k, v in result.final_metrics.items() if k.startswith("eval/"))
    return f"{job}: trained {result.steps} steps; {evaluation}; metrics: {result.metrics_file}"


def _pipeline(args: argparse.Namespace) -> int:
    cfg = load(args, ("pipeline",))
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.trainers.pipeline import pipeline_jobs, run_pipeline

    stages = pipeline_jobs(cfg)
    if args.force and args.force not in stages:
        method = f"pipeline.method {cfg.pipeline.method} ({', '.join(stages)})"
        print(f"pipeline: --force {args.force}: not a stage of {method}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    force = set(stages[stages.index(args.force) :]) if args.force else set()
    try:
        result = run_pipeline(cfg, force)
    except input_errors() as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(f"SFT model: {result.sft_model}")
    if result.reward_model_dir is not None:
        print(f"reward model: {result.reward_model_dir}")
    if result.dpo is not None:
        print(_trained("DPO", result.dpo))
        if result.dpo.export_dir:
            print(f"policy exported to {result.dpo.export_dir}")
    if result.ppo is not None:
        print(f"PPO: trained {result.ppo.steps} steps; metrics: {result.ppo.metrics_file}")
        if result.ppo.export_dir:
            print(f"policy exported to {result.ppo.export_dir}")
    from rlhf_ray.trainers.report import pipeline_report

    report = pipeline_report(cfg, result)
    if report is not None:
        print(f"\n{report}")
    return 0


def _add_debug_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--debug",
        action="store_true",
        help="a few small steps of every role on this machine (CPU without a GPU), verbose, with Ray's debugger",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-ray", description="Distributed RLHF on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = add_command(
        commands, "validate", "check a config and print it fully resolved; exit 2 listing every problem", _validate
    )
    _add_debug_flag(validate)
    train = add_command(commands, "train", "run PPO (RLHF) as the config says; resumes from its checkpoints", _train)
    _add_debug_flag(train)
    add_command(commands, "sft", "stage 1: supervised fine-tuning of the policy on demonstrations", _sft)
    add_command(commands, "rm", "stage 2: train a reward model on preference pairs (Bradley-Terry)", _rm)
    add_command(commands, "dpo", "train the policy on preference pairs with DPO (instead of reward model + PPO)", _dpo)
    pipeline = add_command(
        commands,
        "pipeline",
        "SFT -> reward model -> PPO (or SFT -> DPO: pipeline.method=dpo), each stage reading the previous one's model",
        _pipeline,
    )
    pipeline.add_argument(
        "--force",
        choices=["sft", "rm", "ppo", "dpo"],
        help="rerun this stage and every later one, even if their models exist",
    )
    add_label_commands(commands)
    add_model_commands(commands)
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
