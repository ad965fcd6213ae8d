"""``rlhf-ray submit`` and ``rlhf-ray jobs list|status|logs|stop``: the Ray Jobs API from the command
line. Forwarded variables are never printed; neither is a job's runtime environment, which holds them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rlhf_ray.config import EXIT_CONFIG_ERROR, ConfigError, load_config
from rlhf_ray.jobs.client import TERMINAL_STATUSES, JobServerError, connect, job_server_address, job_server_errors
from rlhf_ray.jobs.sealed_env import cluster_token
from rlhf_ray.jobs.submission import SubmitError, check_outputs, job_spec

EXIT_JOB_FAILED = 1
STOP_POLL_S = 1.0


def add_job_commands(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser(
        "submit", help="run `rlhf-ray train CONFIG` as a job on a Ray cluster and print its id"
    )
    submit.add_argument("config", help="YAML experiment file, inside the working directory")
    submit.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_steps=5")
    _add_address(submit)
    submit.add_argument(
        "--working-dir",
        type=Path,
        default=Path("."),
        help="folder the job runs in, uploaded without .venv, .cache, outputs, .git and caches (default: .)",
    )
    submit.add_argument(
        "--pip",
        type=Path,
        metavar="REQUIREMENTS",
        help="install this requirements file on the cluster for the job (default: the cluster's environment)",
    )
    submit.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="forward this variable of your environment, e.g. WANDB_API_KEY (sealed, never printed; "
        "needs Ray token authentication)",
    )
    submit.add_argument(
        "--allow-relative-outputs",
        action="store_true",
        help="submit even when an output folder (checkpoint.dir, checkpoint.export_dir, logging.dir, "
        "logging.tensorboard_dir) is a relative path, which lands in the job's temporary working directory on the "
        "cluster (with a warning)",
    )
    submit.add_argument("--follow", action="store_true", help="then stream the logs; exit 0 only if it succeeds")
    submit.set_defaults(run=_reporting_errors(_submit))

    jobs = commands.add_parser("jobs", help="list, inspect, follow or stop the jobs of a Ray cluster")
    actions = jobs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every submitted job: id, status, start time, entrypoint")
    status = actions.add_parser("status", help="a job's status and message")
    logs = actions.add_parser("logs", help="a job's output so far")
    logs.add_argument("--follow", action="store_true", help="stream it until the job ends; exit 0 only on success")
    stop = actions.add_parser("stop", help="stop a job and wait until it has stopped")
    for action, run in ((listing, _list), (status, _status), (logs, _logs), (stop, _stop)):
        if action is not listing:
            action.add_argument("job_id", help="the id `rlhf-ray submit` printed")
        _add_address(action)
        action.set_defaults(run=_reporting_errors(run))


def _add_address(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--address",
        help="the job server, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, then $RAY_ADDRESS)",
    )


def _reporting_errors(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ConfigError as exc:
            print(f"{args.config}: {exc}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
        except SubmitError as exc:
            print(f"rlhf-ray submit: {exc}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
        except JobServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_JOB_FAILED

    return guarded


def _submit(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)  # a config that cannot run is never submitted
    warning = check_outputs(cfg, args.allow_relative_outputs)
    if warning is not None:
        print(f"rlhf-ray submit: warning: {warning}", file=sys.stderr)
    address = job_server_address(args.address)
    spec = job_spec(
        Path(args.config), args.overrides, args.working_dir, args.pip, args.env, os.environ, cluster_token()
    )
    client = connect(address)
    # Ray logs every file it leaves out of the upload, and its own default exclusions, which ours contain.
    logging.getLogger("ray").setLevel(logging.ERROR)
    with job_server_errors(address):
        job_id = client.submit_job(entrypoint=spec.entrypoint, runtime_env=spec.runtime_env)
    forwarded = f"; forwarded (sealed): {', '.join(spec.forwarded)}" if spec.forwarded else ""
    print(f"submitted to {address}: {spec.entrypoint}{forwarded}", file=sys.stderr)
    print(job_id, flush=True)
    return _follow(client, address, job_id) if args.follow else 0


def _client(args: argparse.Namespace):
    """The job server's address (``--address`` or the environment) and a client checked to reach it."""
    address = job_server_address(args.address)
    return address, connect(address)


def _list(args: argparse.Namespace) -> int:
    address, client = _client(args)
    with job_server_errors(address):
        jobs = [job for job in client.list_jobs() if job.submission_id is not None]
    for job in sorted(jobs, key=lambda job: job.start_time or 0):
        started = datetime.fromtimestamp(job.start_time / 1000).isoformat(" ", "seconds") if job.start_time else "-"
        print(f"{job.submission_id}  {job.status.value:<9}  {started}  {job.entrypoint}")
    return 0


def _status(args: argparse.Namespace) -> int:
    address, client = _client(args)
    with job_server_errors(address):
        info = client.get_job_info(args.job_id)
    print(f"{args.job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
    return 0


def _logs(args: argparse.Namespace) -> int:
    address, client = _client(args)
    if args.follow:
        return _follow(client, address, args.job_id)
    with job_server_errors(address):
        print(client.get_job_logs(args.job_id), end="")
    return 0


def _stop(args: argparse.Namespace) -> int:
    address, client = _client(args)
    with job_server_errors(address):
        client.stop_job(args.job_id)
        while (status := client.get_job_status(args.job_id).value) not in TERMINAL_STATUSES:
            time.sleep(STOP_POLL_S)
    print(f"{args.job_id}: {status}")
    return 0


def _follow(client, address: str, job_id: str) -> int:
    """Stream the job's logs until it ends; 0 if it succeeded."""

    async def stream() -> None:
        async for chunk in client.tail_job_logs(job_id):
            print(chunk, end="", flush=True)

    with job_server_errors(address):
        asyncio.run(stream())
        status = client.get_job_status(job_id).value
    print(f"{job_id}: {status}", file=sys.stderr)
    return 0 if status == "SUCCEEDED" else EXIT_JOB_FAILED
