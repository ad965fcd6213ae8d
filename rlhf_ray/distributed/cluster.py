"""Joining a Ray cluster, or starting a local one sized for the experiment."""

from __future__ import annotations

import os

import ray
import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile, resolve_device
from rlhf_ray.config.placement_plan import cpus_needed, plan_placement, rollout_units


def connect(cfg: Config) -> DeviceProfile:
    """Join ``resources.ray_address`` (or ``RAY_ADDRESS``), or start a local cluster that declares
    ``resources.num_cpus`` logical CPUs (by default exactly what the roles ask for), as the address
    ``local`` always does; then pick the device from what the cluster has. A driver already connected
    keeps its cluster."""
    if not ray.is_initialized():
        address = cfg.resources.ray_address or os.environ.get("RAY_ADDRESS")
        if address and address != "local":
            ray.init(address=address)
        else:
            local = resolve_device(cfg.resources.device, torch.cuda.device_count())
            units = [*plan_placement(cfg, local, cfg.active_roles()), *rollout_units(cfg, local)]
            num_cpus = cfg.resources.num_cpus or cpus_needed(units)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    return resolve_device(cfg.resources.device, ray.cluster_resources().get("GPU", 0))
