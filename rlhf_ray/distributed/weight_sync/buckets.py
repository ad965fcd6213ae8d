"""Moving policy weights to the rollout engines.

The collective path: policy rank 0 and every engine form a dedicated process group (gloo on CPU,
NCCL on GPU), apart from each side's own default group. The weights travel in buckets: both sides
cut the same list of tensor specs into the same buckets, rank 0 flattens a bucket into one buffer
and broadcasts it, each engine unflattens it and hands the tensors to its model loader. One
broadcast per bucket, not per tensor. Under ZeRO-3 the policy gathers each bucket's parameters
just before sending it, so no rank ever holds more than one bucket in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SYNC_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return int(torch.Size(self.shape).numel())

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPES[self.dtype].itemsize


def bucket_plan(specs: Iterable[TensorSpec], bucket_bytes: int) -> list[list[TensorSpec]]:
    """Consecutive tensors grouped into buckets of at most ``bucket_bytes`` (a larger tensor goes alone);
    a bucket holds one dtype, so it flattens into one buffer."""
    buckets: list[list[TensorSpec]] = []
    size = 0
    for spec in specs:
        current = buckets[-1] if buckets else None
        if current is None or current[0].dtype != spec.dtype or size + spec.nbytes > bucket_bytes:
            buckets.append([spec])
            size = spec.nbytes
        else:
            current.append(spec)
            size += spec.nbytes
    return buckets


class SyncGroup:
    """A process group of the policy's rank 0 (rank 0 here) and the engines (ranks 1..N), independent
    of the default group either side may already have."""

    def __init__(
        self,
        master_addr: str,
        master_port: int,
        rank: int,
        world_size: int,
        backend: str,
        timeout_s: float = SYNC_TIMEOUT_S,
    ):
        store = dist.TCPStore(
            master_addr,
            master_port,
            world_size,
            is_master=rank == 0,
            timeout=timedelta(seconds=timeout_s),
            wait_for_workers=False,
        )
        store = dist.PrefixStore("rlhf_ray_weight_sync", store)
        timeout = timedelta(seconds=timeout_s)
        if backend == "nccl":
            self.group = dist.ProcessGroupNCCL(store, rank, world_size)
        else:
            self.group = dist.ProcessGroupGloo(store, rank, world_size, timeout)
        self.rank = rank

    def broadcast(self, buffer: torch.Tensor) -> None:
        self.group.broadcast(buffer, 0).wait()


def send_buckets(group: SyncGroup, buckets: Iterable[list[torch.Tensor]]) -> None:
    """Rank 0: broadcast each bucket of full tensors as one flat buffer."""
    for tensors in buckets:
        flat = torch.cat([t.reshape(-1) for t in tensors])
        group.broadcast(flat)


def receive_buckets(
    group: SyncGroup, plan: list[list[TensorSpec]], device: torch.device
) -> Iterator[tuple[str, torch.Tensor]]:
    """Engine side: (name, tensor) pairs as the buckets arrive, lazily (a loader can consume them as a
    stream)."""
    for bucket in plan:
        flat = torch.empty(sum(spec.numel for spec in bucket), dtype=DTYPES[bucket[0].dtype], device=device)
        group.broadcast(flat)
        offset = 0
        for spec in bucket:
            yield spec.name, flat[offset : offset + spec.numel].view(spec.shape)
            offset += spec.numel
