"""The ``rlhf-ray`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlhf_ray.config import ConfigError, dump_config, load_config

EXIT_CONFIG_ERROR = 2


def _validate(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    print(dump_config(cfg), end="")
    print(f"# {args.config}: valid; roles: {', '.join(cfg.active_roles())}", file=sys.stderr)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
