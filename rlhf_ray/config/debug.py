"""Debug mode (``rlhf-ray train CONFIG --debug``): the same experiment shrunk to a quick run of every
role on this machine, on the CPU when it has no GPU, with each step's phase timings printed and Ray's
debugger (``breakpoint()`` in a role actor, then ``ray debug``) switched on.

The overlay is a list of dotted overrides applied on top of the file; the command line's own overrides
come after it, so any of its choices can be changed (``--debug train.max_steps=5``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlhf_ray.config.loading import load_config
from rlhf_ray.config.schema import ROLE_NAMES, Config
from rlhf_ray.config.schema.roles import ROLES

DEBUG_MAX_STEPS = 2
DEBUG_PROMPTS_PER_STEP = 4
DEBUG_OUTPUT_DIR = "outputs/debug"


def load_debug_config(path: str | Path, overrides: Sequence[str]) -> Config:
    """The config of ``path`` and ``overrides`` in debug mode on this machine."""
    import torch

    overlay = debug_overlay(load_config(path, overrides), torch.cuda.device_count())
    return load_config(path, [*(f"{key}={json.dumps(value)}" for key, value in overlay.items()), *overrides])


def debug_overlay(cfg: Config, local_gpus: int) -> dict[str, Any]:
    """What debug mode changes in ``cfg``, as dotted keys and values."""
    prompts = min(cfg.data.prompts_per_step, DEBUG_PROMPTS_PER_STEP)
    samples = prompts * cfg.rollout.samples_per_prompt
    output_dir = f"{DEBUG_OUTPUT_DIR}/{cfg.name}"
    overlay: dict[str, Any] = {
        "train.max_steps": min(cfg.train.max_steps or DEBUG_MAX_STEPS, DEBUG_MAX_STEPS),
        "data.prompts_per_step": prompts,
        "rollout.num_engines": 1,
        "rollout.num_nodes": None,
        "rollout.tensor_parallel_size": 1,
        # A local cluster even when RAY_ADDRESS points at a real one.
        "resources.ray_address": "local",
        "resources.num_nodes": 1,
        "resources.num_cpus": None,
        # breakpoint() in an actor waits for `ray debug`; Ray's default debugger needs debugpy and the dashboard.
        "resources.env_vars.RAY_DEBUG": "legacy",
        "logging.verbose": True,
        "logging.dir": f"{output_dir}/logs",
        "logging.wandb.mode": "offline",
        "checkpoint.dir": f"{output_dir}/checkpoints",
        "checkpoint.interval": 0,
        "checkpoint.resume": "never",
        "checkpoint.export_dir": None,
    }
    for role in ROLE_NAMES:
        overlay[f"resources.{role}.num_nodes"] = 1
        overlay[f"resources.{role}.gpus_per_node"] = 1
    for role in [spec.name for spec in ROLES if spec.trained]:
        # One optimizer step per iteration on one rank; the micro-batch still divides it.
        overlay[f"train.{role}.global_batch_size"] = samples
        overlay[f"train.{role}.micro_batch_size"] = math.gcd(getattr(cfg.train, role).micro_batch_size, samples)
        if local_gpus == 0:
            overlay[f"train.{role}.offload_optimizer"] = False
            overlay[f"train.{role}.offload_params"] = False
    if local_gpus == 0:
        overlay["resources.device"] = "cpu"
        # One rank of every role: one process holds them all (the libraries loaded once, a quicker start).
        overlay["resources.colocate"] = [cfg.active_roles()]
        overlay["resources.shared_processes"] = True
        if not cfg.rollout.async_steps:  # the engine in that process too: no process of its own to start
            overlay["rollout.weight_sync"] = "in_process"
    else:
        overlay["resources.gpus_per_node"] = local_gpus
    return overlay
