"""A role group: N Ray actors of one worker class that form one torch.distributed group. The driver
talks to it as to one object: every worker method declared with ``@dispatch`` is a method of the group
of the same name, which starts it on the ranks as declared and returns a ``GroupCall`` (``.result()``
waits and gathers). Batches are any row container with ``len``, ``select`` and ``chunks``
(``SequenceBatch``, ``PreferenceBatch``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import ray
import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.distributed.dispatch import Dispatch, dispatch_mode
from rlhf_ray.distributed.failures import ActorProcess, actor_id, get_all
from rlhf_ray.distributed.placement import RoleSlots
from rlhf_ray.distributed.role_host import HostedRole, RoleHosts, join_process_group, start_ranks

SHUTDOWN_S = 30.0
"""How long the ranks may take to leave their process groups before they are killed regardless."""


class RoleGroup:
    def __init__(
        self,
        name: str,
        worker_cls: type,
        slots: RoleSlots,
        cfg: Config,
        device: DeviceProfile,
        hosts: RoleHosts | None = None,
    ):
        """The role's ranks as actors of their own, or, with ``hosts``, inside the processes it shares with
        the other roles of its colocation group (``resources.shared_processes``)."""
        cfg = device.resolved(cfg)  # the ranks get concrete precisions and dtypes
        self.name = name
        self.worker_cls = worker_cls
        self.world_size = slots.world_size
        self.holds_model: bool = worker_cls.holds_model
        self.actors = start_ranks(worker_cls, name, slots, cfg, device) if hosts is None else hosts.ranks(name)
        self.nodes: list[str] = get_all([actor.node_id.remote() for actor in self.actors])
        logs = get_all([actor.log_file.remote() for actor in self.actors])
        process_name = name if hosts is None else hosts.name
        self.processes = {
            actor_id(actor): ActorProcess(process_name, rank, node, log)
            for rank, (actor, node, log) in enumerate(zip(self.actors, self.nodes, logs, strict=True))
        }
        """Each rank as the driver names it when it dies, by actor id."""
        if hosts is None:  # hosts join theirs when they start
            join_process_group(self.actors)

    def __getattr__(self, name: str) -> GroupMethod:
        worker_cls = self.__dict__.get("worker_cls")
        mode = None if worker_cls is None else dispatch_mode(worker_cls, name)
        if mode is None:
            raise AttributeError(
                f"{getattr(worker_cls, '__name__', 'the worker')}.{name} is not a method a role group calls "
                "(declare it with @dispatch)"
            )
        return GroupMethod(self, name, mode)

    def shutdown(self, graceful: bool = True) -> None:
        """End every rank, ``graceful``-ly letting each leave its process group first (after a failure the
        live ranks may be stuck in a collective, so they are just ended). Never raises: the first error
        is the one to report."""
        if graceful:
            calls = [actor.shutdown.remote() for actor in self.actors]
            ray.wait(calls, num_returns=len(calls), timeout=SHUTDOWN_S)
        for actor in self.actors:
            ray.kill(actor.host if isinstance(actor, HostedRole) else actor)


class GroupMethod:
    """A worker method as the group calls it: ``method(*args, **kwargs)`` starts it on every rank."""

    def __init__(self, group: RoleGroup, name: str, mode: Dispatch):
        self.group, self.name, self.mode = group, name, mode

    def __call__(self, *args: Any, **kwargs: Any) -> GroupCall:
        actors = self.group.actors
        if self.mode in (Dispatch.ALL, Dispatch.RANK_ZERO):
            refs = [getattr(actor, self.name).remote(*args, **kwargs) for actor in actors]
            return GroupCall(refs, self.mode)
        batch, *rest = args
        if self.mode is Dispatch.EVEN and len(batch) % len(actors):
            raise ValueError(
                f"{self.group.name}.{self.name}: {len(batch)} samples do not split evenly over {len(actors)} ranks"
            )
        padded = _pad_to_multiple(batch, len(actors))
        shards = padded.chunks([len(padded) // len(actors)] * len(actors))
        refs = [
            getattr(actor, self.name).remote(shard, *rest, **kwargs)
            for actor, shard in zip(actors, shards, strict=True)
        ]
        return GroupCall(refs, self.mode, len(batch))


class GroupCall:
    """One call running on every rank of a group; ``result()`` waits and gathers as its mode says."""

    def __init__(self, refs: Sequence[ray.ObjectRef], mode: Dispatch, batch_size: int | None = None):
        self.refs = list(refs)
        self.mode = mode
        self.batch_size = batch_size

    def result(self) -> Any:
        results = get_all(self.refs)
        if self.mode is Dispatch.ALL:
            return results
        if self.mode is Dispatch.RANK_ZERO:
            return results[0]
        if isinstance(results[0], dict):
            return {key: self._gather([r[key] for r in results]) for key in results[0]}
        return self._gather(results)

    def _gather(self, results: list[Any]) -> Any:
        """The ranks' tensors of their shards in order (the padding dropped), their numbers averaged."""
        if isinstance(results[0], torch.Tensor):
            return torch.cat(results)[: self.batch_size]
        if isinstance(results[0], int | float):
            return sum(results) / len(results)
        return results


def share_cores(groups: Iterable[RoleGroup], alongside: int = 0) -> None:
    """Before a phase in which ``groups`` compute at once, tell every rank how many of the phase's processes
    share its node, so that together they use each node's cores once (a rank's calls run in the order
    they are sent, so the phase's calls that follow see the new share; roles sharing a process run one
    after another, so the process counts once). ``alongside``: processes on
    every node that compute during the phase too (engines generating ahead)."""
    groups = [group for group in groups if group.holds_model]  # a reward function barely computes
    processes = {
        actor_id(actor): (actor, node)
        for group in groups
        for actor, node in zip(group.actors, group.nodes, strict=True)
    }
    ranks_on = Counter(node for _, node in processes.values())
    for actor, node in processes.values():
        actor.share_cores.remote(ranks_on[node] + alongside)


def freeze_heaps(groups: Iterable[RoleGroup]) -> None:
    """``heap.freeze_heap`` in every process of ``groups``, each process once (before its next call: a
    rank's calls run in the order they are sent)."""
    processes = {actor_id(actor): actor for group in groups for actor in group.actors}
    for actor in processes.values():
        actor.freeze_heap.remote()


def _pad_to_multiple(batch, multiple: int):
    missing = -len(batch) % multiple
    if not missing:
        return batch
    return batch.select([*range(len(batch)), *[len(batch) - 1] * missing])
