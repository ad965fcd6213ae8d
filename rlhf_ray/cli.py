"""The ``rlhf-ray`` command."""

from __future__ import annotations

import argparse
import os
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


def _name_the_accelerator() -> None:
    """Tell DeepSpeed, which the driver imports, the accelerator it would otherwise guess aloud (a warning
    on every run of a CPU machine); the role actors are told theirs by the device profile."""
    import torch

    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")


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
    _name_the_accelerator()
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


def _dpo(args: argparse.Namespace) -> int:
    return _run_stage(args, "dpo")


def _run_stage(args: argparse.Namespace, name: str) -> int:
    cfg = _load(args, (name,))
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.trainers.stages import STAGES
    from rlhf_ray.trainers.supervised import run_stage

    stage = STAGES[name](cfg)
    try:
        result = run_stage(stage)
    except _input_errors() as exc:
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
    cfg = _load(args, ("pipeline",))
    if cfg is None:
        return EXIT_CONFIG_ERROR
    from rlhf_ray.trainers.pipeline import STAGES, run_pipeline

    stages = STAGES[cfg.pipeline.method]
    if args.force and args.force not in stages:
        method = f"pipeline.method {cfg.pipeline.method} ({', '.join(stages)})"
        print(f"pipeline: --force {args.force}: not a stage of {method}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    force = set(stages[stages.index(args.force) :]) if args.force else set()
    try:
        result = run_pipeline(cfg, force)
    except _input_errors() as exc:
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


def _plot(args: argparse.Namespace) -> int:
    from rlhf_ray.tracking.plots import PlotError, Run, plot_runs, read_metrics, run_label

    if args.label and len(args.label) != len(args.metrics):
        print(f"plot: {len(args.label)} --label for {len(args.metrics)} metrics files", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    labels = args.label or [run_label(path) for path in args.metrics]
    output = args.output or args.metrics[0].with_suffix(".png")
    try:
        plot_runs([Run(label, read_metrics(path)) for label, path in zip(labels, args.metrics, strict=True)], output)
    except PlotError as exc:
        print(f"plot: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(output)
    return 0


SAMPLING_FLAGS = {
    "engine": "rollout.engine",
    "max_new_tokens": "rollout.max_new_tokens",
    "temperature": "rollout.temperature",
    "n": "rollout.samples_per_prompt",
    "seed": "seed",
    "chat_template": "data.apply_chat_template",
}
"""The flags of ``generate`` and ``chat``, and the config field each one sets."""


def _sampling_overrides(args: argparse.Namespace) -> list[str]:
    flags = vars(args)
    given = [f"{field}={flags[flag]}" for flag, field in SAMPLING_FLAGS.items() if flags.get(flag) is not None]
    return [*given, *args.overrides]


def _generate(args: argparse.Namespace) -> int:
    import json
    import time

    _name_the_accelerator()  # DeepSpeed, imported with the engines, would say it on stdout
    from rlhf_ray.trainers.sampling import Sampler, load_prompt_file, sampling_config

    try:
        cfg = sampling_config(args.model_folder, _sampling_overrides(args))
        prompts = load_prompt_file(args.prompts, cfg)
    except (ConfigError, *_input_errors()) as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    sampler = Sampler(cfg, args.model_folder)
    start = time.perf_counter()
    responses = [r for rs in sampler.respond(prompts, sampler.configured()) for r in rs]
    seconds = time.perf_counter() - start
    lines = "".join(json.dumps(r.row(), ensure_ascii=False) + "\n" for r in responses)
    if args.output is None:
        sys.stdout.write(lines)
    else:
        args.output.write_text(lines)
    tokens = sum(r.tokens for r in responses)
    where = f" to {args.output}" if args.output else ""
    print(
        f"generate: {len(responses)} responses to {len(prompts)} prompts{where} in {seconds:.2f} s "
        f"({tokens / seconds:.0f} tokens/s, {cfg.rollout.engine} engine)",
        file=sys.stderr,
    )
    return 0


def _chat(args: argparse.Namespace) -> int:
    _name_the_accelerator()  # DeepSpeed, imported with the engines, would say it on stdout
    from rlhf_ray.trainers.sampling import QUIT, RESET, Sampler, chat, sampling_config

    try:
        cfg = sampling_config(args.model_folder, _sampling_overrides(args))
    except (ConfigError, *_input_errors()) as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    sampler = Sampler(cfg, args.model_folder)
    typing = sys.stdin.isatty()
    if typing:
        print(f"chatting with {args.model_folder}: {RESET} starts over, {QUIT} (or Ctrl-D) ends", file=sys.stderr)
    chat(sampler, _typed_lines("> " if typing else ""), lambda text: print(text, flush=True))
    return 0


def _typed_lines(prompt: str):
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


def _eval(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    _name_the_accelerator()
    import json

    from rlhf_ray.rewards.functions import RewardError
    from rlhf_ray.trainers.evaluate import EvalRequest, evaluate

    request = EvalRequest(args.prompts, args.model, args.baseline, args.samples, args.pass_threshold)
    try:
        report = evaluate(cfg, request)
    except _input_errors() as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except RewardError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    if args.output is not None:
        args.output.write_text(json.dumps(report.summary(), indent=2) + "\n")
        print(f"summary: {args.output}")
    return 0


def _add_sampling_flags(command: argparse.ArgumentParser) -> None:
    from rlhf_ray.config.schema import ROLLOUT_ENGINES

    defaults = Config()
    command.add_argument("model_folder", metavar="MODEL_FOLDER", help="a local HF model folder")
    command.add_argument("overrides", nargs="*", help="dotted overrides of the config, e.g. rollout.top_p=0.9")
    command.add_argument(
        "--engine", choices=list(ROLLOUT_ENGINES), help=f"the rollout engine (default: {defaults.rollout.engine})"
    )
    command.add_argument(
        "--max-new-tokens", type=int, metavar="N", help=f"longest response (default: {defaults.rollout.max_new_tokens})"
    )
    command.add_argument("--temperature", type=float, help=f"0 for greedy (default: {defaults.rollout.temperature:g})")
    command.add_argument("--seed", type=int, help=f"base seed of the samples (default: {defaults.seed})")
    command.add_argument(
        "--chat-template",
        action=argparse.BooleanOptionalAction,
        help="render prompts with the tokenizer's chat template (default: when it has one)",
    )


def _add_model_commands(commands) -> None:
    generate = commands.add_parser("generate", help="sample responses to a prompts file from a model folder")
    _add_sampling_flags(generate)
    generate.add_argument("--prompts", required=True, metavar="FILE", help="JSONL, JSON or Parquet rows {prompt: ...}")
    generate.add_argument(
        "--n", type=int, help=f"responses per prompt (default: {Config().rollout.samples_per_prompt})"
    )
    generate.add_argument("--output", type=Path, metavar="JSONL", help="where the rows go (default: stdout)")
    generate.set_defaults(run=_generate)
    chat = commands.add_parser("chat", help="talk to a model folder, one line a turn (/reset, /quit)")
    _add_sampling_flags(chat)
    chat.set_defaults(run=_chat)
    evaluation = _add_command(
        commands, "eval", "score a model on held-out prompts: reward, gold reward, win rate, pass@k", _eval
    )
    evaluation.add_argument("--prompts", metavar="FILE", help="held-out prompts (default: data.eval_path)")
    evaluation.add_argument("--model", metavar="FOLDER", help="the model judged (default: the config's policy)")
    evaluation.add_argument("--baseline", metavar="FOLDER", help="a model to compare with: the win rate")
    evaluation.add_argument(
        "--samples", type=int, metavar="K", help="K sampled responses per prompt (rollout.temperature) for pass@k"
    )
    evaluation.add_argument(
        "--pass-threshold", type=float, default=0.5, metavar="R", help="a response passes with reward > R"
    )
    evaluation.add_argument("--output", type=Path, metavar="JSON", help="write the summary here")


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
    _add_command(commands, "dpo", "train the policy on preference pairs with DPO (instead of reward model + PPO)", _dpo)
    pipeline = _add_command(
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
    _add_command(commands, "label", "write the simulated labellers' SFT and preference files", _label)
    plot = commands.add_parser("plot", help="plot metrics files (*.metrics.jsonl) to a PNG, runs overlaid")
    plot.add_argument("metrics", nargs="+", type=Path, metavar="METRICS.jsonl", help="metrics files, one per run")
    plot.add_argument(
        "--output", type=Path, metavar="PNG", help="the PNG to write (default: the first file's, as .png)"
    )
    plot.add_argument(
        "--label", action="append", metavar="NAME", help="a run's name in the legend, once per file (default: its name)"
    )
    plot.set_defaults(run=_plot)
    _add_model_commands(commands)
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
