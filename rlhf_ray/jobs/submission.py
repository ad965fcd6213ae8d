"""What ``rlhf-ray submit`` sends: the entrypoint that runs ``rlhf-ray train`` on the cluster, and the
job's runtime environment: the working directory without the big local folders, the cluster's own
Python environment or a pip requirements file installed on top of it, and forwarded variables, sealed;
and the check that the run's outputs are not written into the job's temporary working directory."""

from __future__ import annotations

import operator
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_ray.config import Config
from rlhf_ray.jobs.sealed_env import SEALED_ENV_VAR, seal

ENTRYPOINT = ("python", "-m", "rlhf_ray.jobs.entrypoint", "train")
# Environments, caches, outputs and history: never uploaded (the cluster has or makes its own).
EXCLUDES = (
    ".git",
    ".venv",
    ".cache",
    "outputs",
    "wandb",
    "**/__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
)
# The folders `rlhf-ray train` writes. The job runs in a copy of the working directory that Ray unpacks
# into its temporary folder on the head, so relative ones would land there, out of reach and deleted with it.
OUTPUT_FIELDS = ("checkpoint.dir", "checkpoint.export_dir", "logging.dir", "logging.tensorboard_dir")


class SubmitError(ValueError):
    """A submission that cannot be made as asked."""


def relative_outputs(cfg: Config) -> dict[str, str]:
    """The output folders of ``cfg`` that are relative paths, by field."""
    folders = {field: operator.attrgetter(field)(cfg) for field in OUTPUT_FIELDS}
    return {field: folder for field, folder in folders.items() if folder is not None and not Path(folder).is_absolute()}


def check_outputs(cfg: Config, allow_relative: bool) -> str | None:
    """Refuse (``SubmitError``) a config whose outputs would land in the job's temporary working directory;
    with ``allow_relative``, return the warning to give instead (None when every output folder is absolute)."""
    relative = relative_outputs(cfg)
    if not relative:
        return None
    listed = ", ".join(f"{field}={folder}" for field, folder in relative.items())
    where = f"{listed} would be written into the job's temporary copy of the working directory on the cluster"
    if allow_relative:
        return f"{where}, and may be deleted with it"
    raise SubmitError(
        f"{where} and lost with it, and a resubmitted job could not count on resuming from its checkpoints: "
        "give absolute folders on storage every node shares (e.g. the override "
        f"checkpoint.dir=/shared/{cfg.name}/checkpoints), or pass --allow-relative-outputs to submit anyway"
    )


@dataclass(frozen=True)
class JobSpec:
    entrypoint: str
    runtime_env: dict[str, Any]
    forwarded: tuple[str, ...]
    """Names of the forwarded variables (their values are sealed in the runtime environment)."""


def job_spec(
    config: Path,
    overrides: Sequence[str],
    working_dir: Path,
    pip: Path | None,
    forward: Sequence[str],
    environ: Mapping[str, str],
    token: str | None,
) -> JobSpec:
    """The job that trains ``config`` with ``overrides``, the config read from the uploaded
    ``working_dir``; ``forward`` names variables of ``environ`` sealed with the cluster ``token``."""
    try:
        relative = config.resolve().relative_to(working_dir.resolve())
    except ValueError:
        raise SubmitError(
            f"{config} is outside the working directory {working_dir}, which is all the job gets: "
            "move it in or pass --working-dir"
        ) from None
    runtime_env: dict[str, Any] = {"working_dir": str(working_dir), "excludes": list(EXCLUDES)}
    if pip is not None:
        if not pip.is_file():
            raise SubmitError(f"--pip {pip}: no such requirements file")
        runtime_env["pip"] = str(pip)
    missing = [name for name in forward if name not in environ]
    if missing:
        raise SubmitError(f"--env {', '.join(missing)}: not set in your environment")
    if forward:
        if token is None:
            raise SubmitError(
                f"--env {', '.join(forward)} needs Ray token authentication: set RAY_AUTH_MODE=token and the "
                "cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). The values are "
                "sealed with it, since Ray writes a job's plain environment variables to the cluster's logs"
            )
        runtime_env["env_vars"] = {SEALED_ENV_VAR: seal({name: environ[name] for name in forward}, token)}
    entrypoint = shlex.join([*ENTRYPOINT, relative.as_posix(), *overrides])
    return JobSpec(entrypoint, runtime_env, tuple(forward))
