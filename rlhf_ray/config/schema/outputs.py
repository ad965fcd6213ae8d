"""Dashboards, console output, checkpoints and export."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rlhf_ray.config.schema.base import PositiveInt, Section


class WandbConfig(Section):
    """Weights & Biases. The API key is read from the environment, never from here."""

    mode: Literal["online", "offline", "disabled"] = "offline"
    """``offline`` writes a run folder to upload later with ``wandb sync``."""
    project: str = "rlhf_ray"
    """W&B project."""
    entity: str | None = None
    """W&B team or user; None: the key's default."""
    run_name: str | None = None
    """Run name; None: the config's ``name`` with a timestamp."""
    group: str | None = None
    """Group several runs (e.g. the stages of a pipeline)."""
    tags: list[str] = Field(default_factory=list)
    """Run tags."""


class LoggingConfig(Section):
    """Dashboards and console output."""

    dir: str = "outputs/logs"
    """Where the W&B run folder (``wandb/``) and the metrics file of each run are written."""
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    """Weights & Biases."""
    tensorboard_dir: str | None = None
    """Also write TensorBoard events here; None disables it."""
    log_interval: PositiveInt = 1
    """Log metrics every N iterations."""
    sample_table_interval: Annotated[int, Field(ge=0)] = 10
    """Log a table of prompts, responses and rewards every N iterations; 0 disables it."""
    sample_table_size: PositiveInt = 8
    """Rows in that table."""
    verbose: bool = False
    """Also print every logged step's per-phase timings to the console (on in debug mode)."""


class CheckpointConfig(Section):
    """Saving and resuming."""

    dir: str = "outputs/checkpoints"
    """Folder of checkpoints (one sub-folder per step, written aside and renamed when complete)."""
    interval: Annotated[int, Field(ge=0)] = 0
    """Save every N iterations; 0 saves only at the end."""
    keep_last: PositiveInt = 2
    """How many complete checkpoints to keep."""
    resume: str = "auto"
    """``auto``: continue from the newest complete checkpoint; ``never``; or a checkpoint folder."""
    stop_deadline_s: Annotated[float, Field(gt=0.0)] = 60.0
    """After SIGTERM or SIGINT (preemption, Ctrl-C) the run checkpoints at the end of the current step
    and exits resumable; a step not done within this many seconds is abandoned and the last complete
    checkpoint is the one to resume from."""
    export_dir: str | None = "outputs/policy"
    """Export the final policy as a plain HF folder here; None skips it."""
