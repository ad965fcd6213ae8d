"""The commands that try and judge a model: ``generate``, ``chat``, ``eval``, ``reward-server``, and ``plot``
of a run's metrics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlhf_ray.cli.common import add_command, input_errors, load, name_the_accelerator
from rlhf_ray.config import EXIT_CONFIG_ERROR, Config, ConfigError
from rlhf_ray.serving.options import ServerOptions


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

    name_the_accelerator()  # DeepSpeed, imported with the engines, would say it on stdout
    from rlhf_ray.trainers.sampling import Sampler, load_prompt_file, sampling_config

    try:
        cfg = sampling_config(args.model_folder, _sampling_overrides(args))
        prompts = load_prompt_file(args.prompts, cfg)
    except (ConfigError, *input_errors()) as exc:
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
    name_the_accelerator()  # DeepSpeed, imported with the engines, would say it on stdout
    from rlhf_ray.trainers.sampling import QUIT, RESET, Sampler, chat, sampling_config

    try:
        cfg = sampling_config(args.model_folder, _sampling_overrides(args))
    except (ConfigError, *input_errors()) as exc:
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
    cfg = load(args)
    if cfg is None:
        return EXIT_CONFIG_ERROR
    name_the_accelerator()
    import json

    from rlhf_ray.rewards.functions import RewardError
    from rlhf_ray.trainers.evaluate import EvalRequest, evaluate

    request = EvalRequest(args.prompts, args.model, args.baseline, args.samples, args.pass_threshold)
    try:
        report = evaluate(cfg, request)
    except input_errors() as exc:
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


def _reward_server(args: argparse.Namespace) -> int:
    name_the_accelerator()
    from rlhf_ray.rewards.functions import RewardError
    from rlhf_ray.serving.reward_server import ServedReward, serve_reward

    served = ServedReward(args.target, args.dtype, args.normalize)
    options = ServerOptions(
        args.host,
        args.port,
        args.replicas,
        args.max_batch_size,
        args.batch_wait_s,
        args.cpus_per_replica,
        args.gpus_per_replica,
        args.address,
    )
    try:
        served.check()
    except (ImportError, AttributeError, RewardError, *input_errors()) as exc:
        print(f"reward-server: {args.target}: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    serve_reward(served, options, ready=lambda url: print(f"serving {args.target} at {url} (Ctrl-C stops)", flush=True))
    return 0


def _add_reward_server(commands) -> None:
    defaults = ServerOptions()
    server = commands.add_parser(
        "reward-server",
        help="serve a reward model or function over HTTP (Ray Serve) for runs with reward.source: http",
    )
    server.add_argument("target", metavar="MODEL_FOLDER|module:function", help="a reward-model folder or a function")
    server.add_argument("--host", default=defaults.host, help=f"the address to listen on (default: {defaults.host})")
    server.add_argument("--port", type=int, default=defaults.port, help=f"(default: {defaults.port})")
    server.add_argument("--replicas", type=int, default=defaults.replicas, help="Ray Serve replicas (default: 1)")
    server.add_argument(
        "--max-batch-size",
        type=int,
        default=defaults.max_batch_size,
        help=f"requests gathered into one forward (default: {defaults.max_batch_size})",
    )
    server.add_argument(
        "--batch-wait-s",
        type=float,
        default=defaults.batch_wait_s,
        help=f"how long a request waits for others to join its batch (default: {defaults.batch_wait_s:g})",
    )
    server.add_argument("--cpus-per-replica", type=float, default=defaults.cpus_per_replica)
    server.add_argument("--gpus-per-replica", type=float, default=defaults.gpus_per_replica)
    server.add_argument("--dtype", default="float32", help="the reward model's dtype (default: float32)")
    server.add_argument(
        "--normalize", action="store_true", help="standardise the model's scores with the statistics rm saved"
    )
    server.add_argument("--address", help="a Ray cluster to join (default: start one on this machine)")
    server.set_defaults(run=_reward_server)


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


def add_model_commands(commands) -> None:
    plot = commands.add_parser("plot", help="plot metrics files (*.metrics.jsonl) to a PNG, runs overlaid")
    plot.add_argument("metrics", nargs="+", type=Path, metavar="METRICS.jsonl", help="metrics files, one per run")
    plot.add_argument(
        "--output", type=Path, metavar="PNG", help="the PNG to write (default: the first file's, as .png)"
    )
    plot.add_argument(
        "--label", action="append", metavar="NAME", help="a run's name in the legend, once per file (default: its name)"
    )
    plot.set_defaults(run=_plot)
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
    evaluation = add_command(
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
    _add_reward_server(commands)
