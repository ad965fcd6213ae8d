"""Joining a Ray cluster, or starting a local one sized for the experiment."""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

import ray
import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile, resolve_device
from rlhf_ray.config.placement_plan import cpus_needed, plan_placement, rollout_units

CONNECT_TIMEOUT_S = 5.0
# Ray's default ports: the GCS of `ray start --head`, and the Ray client server (``ray://HEAD``).
GCS_PORT, CLIENT_PORT = 6379, 10001


class ClusterUnreachableError(ConnectionError):
    """The Ray cluster the run was told to join does not answer; the message names the address and
    where it came from."""


def connect(cfg: Config) -> DeviceProfile:
    """Join ``resources.ray_address`` (or ``RAY_ADDRESS``), or start a local cluster that declares
    ``resources.num_cpus`` logical CPUs (by default exactly what the roles ask for), as the address
    ``local`` always does; then pick the device from what the cluster has. A driver already connected
    keeps its cluster."""
    if not ray.is_initialized():
        address = cfg.resources.ray_address or os.environ.get("RAY_ADDRESS")
        if address and address != "local":
            _check_reachable(address, "resources.ray_address" if cfg.resources.ray_address else "RAY_ADDRESS")
            ray.init(address=address, **_console_options(cfg))
        else:
            local = resolve_device(cfg.resources.device, torch.cuda.device_count())
            units = [*plan_placement(cfg, local, cfg.active_roles()), *rollout_units(cfg, local)]
            num_cpus = cfg.resources.num_cpus or cpus_needed(units)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **_console_options(cfg))
    return resolve_device(cfg.resources.device, ray.cluster_resources().get("GPU", 0))


def _console_options(cfg: Config) -> dict:
    """Ray's own lines and the actors' output (model loading bars, library notices) reach the console only
    with ``logging.verbose``; otherwise they stay in the actors' log files, which a failure names."""
    verbose = cfg.logging.verbose
    return {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.WARNING}


def _check_reachable(address: str, source: str) -> None:
    """Fail in seconds on an address nobody answers: ``ray.init`` retries for minutes before it gives up."""
    if address == "auto":  # the address of the cluster started on this machine, which ray.init looks up
        return
    url = urlsplit(address if "://" in address else f"//{address}")
    if url.scheme in ("http", "https"):
        raise ClusterUnreachableError(
            f"{source}={address} is a dashboard or job server URL; give the cluster's address, HEAD:{GCS_PORT} "
            "(or submit to the job server with `rlhf-ray submit --address`)"
        )
    try:
        port = url.port or (CLIENT_PORT if url.scheme == "ray" else None)
    except ValueError as exc:
        raise ClusterUnreachableError(f"{source}={address}: {exc}") from None
    if port is None:
        raise ClusterUnreachableError(f"{source}={address} has no port: give the cluster's address, HEAD:{GCS_PORT}")
    try:
        socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterUnreachableError(
            f"{source}={address}: cannot reach a Ray cluster there ({_reason(exc)}): is its head running "
            f"(`ray start --head`), and is the port open from this machine? Unset {source} to start a local cluster"
        ) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
