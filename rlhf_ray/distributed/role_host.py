"""Several roles in one process (``resources.shared_processes``): each rank of a colocation group is one
actor, a ``RoleHost``, holding that rank of every role of the group. The roles are called in turn, each
with all of the rank's cores, and the process loads torch, DeepSpeed and transformers once instead of
once per role. A role's ranks are then ``HostedRole``s, which the driver calls as it calls an actor."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.distributed.failures import get_all
from rlhf_ray.distributed.faults import process_env
from rlhf_ray.distributed.placement import RoleSlots


class RoleHost:
    """One rank of every role of a colocation group, in one process."""

    def __init__(self, workers: Mapping[str, type], cfg: Config, rank: int, world_size: int, device: DeviceProfile):
        self.roles = {role: worker_cls(cfg, rank, world_size, device) for role, worker_cls in workers.items()}

    def call(self, role: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.roles[role], method)(*args, **kwargs)


class HostedRole:
    """A role's rank inside a ``RoleHost``, called as its own actor would be: ``rank.method.remote(...)``."""

    def __init__(self, host: ray.actor.ActorHandle, role: str):
        self.host, self.role = host, role

    def __getattr__(self, method: str) -> _HostedMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return _HostedMethod(self.host, self.role, method)

    @property
    def _actor_id(self):
        return self.host._actor_id


class _HostedMethod:
    def __init__(self, host: ray.actor.ActorHandle, role: str, method: str):
        self.host, self.role, self.method = host, role, method

    def remote(self, *args: Any, **kwargs: Any) -> ray.ObjectRef:
        return self.host.call.remote(self.role, self.method, *args, **kwargs)


def start_ranks(
    actor_cls: type, name: str, slots: RoleSlots, cfg: Config, device: DeviceProfile, *leading: Any
) -> list[ray.actor.ActorHandle]:
    """One actor of ``actor_cls`` per rank of ``slots``, placed, with the process's environment; each built
    with ``(*leading, cfg, rank, world_size, device)``."""
    remote_cls = ray.remote(actor_cls)
    return [
        remote_cls.options(
            runtime_env={"env_vars": device.actor_env(cfg.resources) | process_env(name, rank)},
            **slots.actor_options(rank),
        ).remote(*leading, cfg, rank, slots.world_size, device)
        for rank in range(slots.world_size)
    ]


def join_process_group(ranks: Sequence[Any]) -> None:
    """Every rank (an actor, or a role in a host) joins one torch.distributed group that rank 0 hosts."""
    master_addr, master_port = get_all([ranks[0].rendezvous_address.remote()])[0]
    get_all([rank.init_process_group.remote(master_addr, master_port) for rank in ranks])


class RoleHosts:
    """The hosts of one colocation group, one per rank, already in one process group."""

    def __init__(self, workers: Mapping[str, type], slots: Mapping[str, RoleSlots], cfg: Config, device: DeviceProfile):
        cfg = device.resolved(cfg)
        self.name = "+".join(workers)
        # Each role's slot is its share of the unit's; the one process takes every share.
        share = slots[next(iter(workers))]
        whole = dataclasses.replace(
            share, num_cpus=share.num_cpus * len(workers), num_gpus=share.num_gpus * len(workers)
        )
        self.actors = start_ranks(RoleHost, self.name, whole, cfg, device, dict(workers))
        join_process_group(self.ranks(next(iter(workers))))

    def ranks(self, role: str) -> list[HostedRole]:
        return [HostedRole(actor, role) for actor in self.actors]
