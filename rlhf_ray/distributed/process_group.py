"""torch.distributed inside Ray actors: rank 0 picks the rendezvous address, every rank joins."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import ray


def rendezvous_address() -> tuple[str, int]:
    """This node's IP and a port free on it, for rank 0 to host the rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    return ray.util.get_node_ip_address(), port


def init_process_group(
    rank: int, world_size: int, master_addr: str, master_port: int, backend: str, timeout_s: float
) -> None:
    """Join the group (DeepSpeed's wrapper, so its communication layer knows the group too)."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        # Ray shows each actor only its own GPU, so the local device is always the first one.
        LOCAL_RANK="0",
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
    )
    import deepspeed

    deepspeed.init_distributed(dist_backend=backend, timeout=timedelta(seconds=timeout_s), verbose=False)


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
