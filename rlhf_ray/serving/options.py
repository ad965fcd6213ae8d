"""Where and how ``rlhf-ray reward-server`` serves (light to import: the command line reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int = 1
    max_batch_size: int = 8
    """Requests Ray Serve gathers into one forward."""
    batch_wait_s: float = 0.01
    """How long a request waits for others to join its batch."""
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    ray_address: str | None = None
    """A cluster to join; None starts one on this machine."""
