"""``rlhf-ray label``: people's judgements (``serve`` the labelling app, ``stats`` of its file) and the
simulated labellers' files (``simulate``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlhf_ray.cli.common import add_command, input_errors, load, name_the_accelerator
from rlhf_ray.config import EXIT_CONFIG_ERROR


def _simulate(args: argparse.Namespace) -> int:
    cfg = load(args)
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


def _serve(args: argparse.Namespace) -> int:
    cfg = load(args, ("feedback",))
    if cfg is None:
        return EXIT_CONFIG_ERROR
    name_the_accelerator()
    from rlhf_ray.labelling.server import Address, serve
    from rlhf_ray.labelling.store import StoreError

    address = Address(args.host or cfg.feedback.host, cfg.feedback.port if args.port is None else args.port)
    try:
        serve(cfg, address, lambda line: print(line, flush=True))
    except (StoreError, OSError, *input_errors()) as exc:
        print(f"label serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json

    from rlhf_ray.labelling.stats import label_stats
    from rlhf_ray.labelling.store import StoreError, read_judgements

    try:
        stats = label_stats(read_judgements(args.file))
    except (StoreError, KeyError) as exc:
        print(f"label stats: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(json.dumps(stats.as_dict(), indent=2) if args.json else stats.table())
    return 0


def add_label_commands(commands) -> None:
    label = commands.add_parser("label", help="human labelling in a browser, its statistics, simulated labellers")
    actions = label.add_subparsers(dest="label_command", required=True)
    serve = add_command(
        actions,
        "serve",
        "serve the labelling web app: rank sampled responses; judgements go to feedback.output_path",
        _serve,
    )
    serve.add_argument("--host", help="address to listen on (default: feedback.host, loopback); others need a token")
    serve.add_argument("--port", type=int, help="port to listen on (default: feedback.port; 0: any free one)")
    stats = actions.add_parser("stats", help="items per labeller, agreement, time per item and flag rate of a file")
    stats.add_argument("file", type=Path, metavar="FILE", help="a judgements file (feedback.output_path)")
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(run=_stats)
    add_command(actions, "simulate", "write the simulated labellers' SFT and preference files", _simulate)
