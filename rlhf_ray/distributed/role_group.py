"""A role group: N Ray actors of one worker class that form one torch.distributed group. The driver
talks to it as to one object.

``run`` shards a batch over the ranks and gathers the results in order. Forward passes accept any
batch size: the batch is padded with copies of its last row to a multiple of the world size (ranks
of a ZeRO-3 group must run the same number of forward passes) and the padding is dropped from the
result. Updates must divide evenly, since a copied row would be trained on twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import ray
import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.placement import RoleSlots


class RoleGroup:
    def __init__(self, name: str, worker_cls: type, slots: RoleSlots, cfg: Config, device: DeviceProfile):
        self.name = name
        self.world_size = slots.world_size
        self.holds_model: bool = worker_cls.holds_model
        actor_cls = ray.remote(worker_cls)
        self.actors = [
            actor_cls.options(
                runtime_env={"env_vars": device.actor_env(cfg.resources)},
                **slots.actor_options(rank),
            ).remote(cfg, rank, self.world_size, device)
            for rank in range(self.world_size)
        ]
        self.nodes: list[str] = ray.get([actor.node_id.remote() for actor in self.actors])
        master_addr, master_port = ray.get(self.actors[0].rendezvous_address.remote())
        ray.get([actor.init_process_group.remote(master_addr, master_port) for actor in self.actors])

    def call(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """``method`` on every rank with the same arguments; the results in rank order."""
        return ray.get(self.call_async(method, *args, **kwargs))

    def call_async(self, method: str, *args: Any, **kwargs: Any) -> list[ray.ObjectRef]:
        return [getattr(actor, method).remote(*args, **kwargs) for actor in self.actors]

    def run(self, method: str, batch: SequenceBatch, **kwargs: Any) -> Any:
        """``method`` on every rank with its shard of ``batch``, results gathered (see ``submit``)."""
        return self.submit(method, batch, **kwargs).result()

    def submit(self, method: str, batch: SequenceBatch, *, even: bool = False, **kwargs: Any) -> ShardedCall:
        """Start ``method`` on every rank with its shard; ``even`` requires equal shards (updates)."""
        if even and len(batch) % self.world_size:
            raise ValueError(
                f"{self.name}.{method}: {len(batch)} samples do not split evenly over {self.world_size} ranks"
            )
        padded = _pad_to_multiple(batch, self.world_size)
        shards = padded.chunks([len(padded) // self.world_size] * self.world_size)
        refs = [
            getattr(actor, method).remote(shard, **kwargs) for actor, shard in zip(self.actors, shards, strict=True)
        ]
        return ShardedCall(refs, len(batch))

    def shutdown(self) -> None:
        ray.get([actor.shutdown.remote() for actor in self.actors])
        for actor in self.actors:
            ray.kill(actor)


def share_cores(groups: Iterable[RoleGroup]) -> None:
    """Before a phase in which ``groups`` compute at once, tell every rank how many of the phase's ranks
    share its node, so that together they use each node's cores once (a rank's calls run in the order
    they are sent, so the phase's calls that follow see the new share)."""
    groups = [group for group in groups if group.holds_model]  # a reward function barely computes
    ranks_on = Counter(node for group in groups for node in group.nodes)
    for group in groups:
        for actor, node in zip(group.actors, group.nodes, strict=True):
            actor.share_cores.remote(ranks_on[node])


class ShardedCall:
    """Results of one call on every rank, gathered on ``result()``: tensors are concatenated in rank
    order (padding dropped), dicts of metrics averaged over ranks."""

    def __init__(self, refs: Sequence[ray.ObjectRef], batch_size: int):
        self.refs = list(refs)
        self.batch_size = batch_size

    def result(self) -> Any:
        results = ray.get(self.refs)
        if isinstance(results[0], torch.Tensor):
            return torch.cat(results)[: self.batch_size]
        if isinstance(results[0], dict):
            return {key: sum(r[key] for r in results) / len(results) for key in results[0]}
        return results


def _pad_to_multiple(batch: SequenceBatch, multiple: int) -> SequenceBatch:
    missing = -len(batch) % multiple
    if not missing:
        return batch
    return batch.select([*range(len(batch)), *[len(batch) - 1] * missing])
