"""The ways policy weights reach the rollout engines (``rollout.weight_sync``), one object each behind one
interface. Every sync ends the same way: each engine must report the new policy version, or the sync
fails (the driver refuses to generate with engines that hold an older one)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import ray

from rlhf_ray.config import Config
from rlhf_ray.distributed.role_group import RoleGroup
from rlhf_ray.distributed.weight_sync.buckets import TensorSpec, bucket_plan


class WeightSync(ABC):
    engines_inside_policy = False
    """Whether the engines live inside the policy's actors (and so are those actors)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def sync(self, policy: RoleGroup, engines: Sequence[ray.actor.ActorHandle], version: int) -> None:
        """Push the policy's current weights, which are its ``version``, into every engine."""
        self.transfer(policy, engines, version)
        held = ray.get([engine.weights_version.remote() for engine in engines])
        if held != [version] * len(engines):
            raise RuntimeError(f"weight sync to version {version} failed: the engines hold versions {held}")

    def reset(self) -> None:  # noqa: B027  (most strategies keep nothing between syncs)
        """Forget what the engines were set up with (after one is replaced): the next sync starts over."""

    @abstractmethod
    def transfer(self, policy: RoleGroup, engines: Sequence[ray.actor.ActorHandle], version: int) -> None:
        """Move the weights; each engine then holds ``version``."""


class BroadcastSync(WeightSync):
    """Policy rank 0 broadcasts buckets of ``rollout.sync_bucket_bytes`` over a group of its own that every
    engine process (each tensor-parallel worker) joins; under ZeRO-3 each bucket is gathered as it goes."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.plan: list[list[TensorSpec]] | None = None  # set when the sync group forms

    def reset(self) -> None:
        self.plan = None  # the next sync forms a new group with the engines there are now

    def transfer(self, policy: RoleGroup, engines: Sequence[ray.actor.ActorHandle], version: int) -> None:
        if self.plan is None:
            self.plan = self._join_sync_group(policy, engines)
        ray.get(
            policy.broadcast_weights(self.plan).refs
            + [engine.receive_weights.remote(self.plan, version) for engine in engines]
        )

    def _join_sync_group(self, policy: RoleGroup, engines: Sequence[ray.actor.ActorHandle]) -> list[list[TensorSpec]]:
        """Form the sync group of policy rank 0 and every engine's model-holding processes; the bucket
        plan of the policy's parameters."""
        sender = policy.actors[0]
        master_addr, master_port = ray.get(sender.rendezvous_address.remote())
        members = ray.get([engine.sync_ranks.remote() for engine in engines])
        first_ranks = [1 + sum(members[:index]) for index in range(len(members))]
        world = 1 + sum(members)
        ray.get(
            [sender.join_weight_sync.remote(master_addr, master_port, world)]
            + [
                engine.join_weight_sync.remote(master_addr, master_port, first, world)
                for first, engine in zip(first_ranks, engines, strict=True)
            ]
        )
        specs = ray.get(sender.weight_specs.remote(self.cfg.rollout.dtype))
        return bucket_plan(specs, self.cfg.rollout.sync_bucket_bytes)


class ObjectStoreSync(WeightSync):
    """The full state dict through Ray's object store: where no collective group can form."""

    def transfer(self, policy: RoleGroup, engines: Sequence[ray.actor.ActorHandle], version: int) -> None:
        state = policy.state_dict().refs  # a collective: rank 0's result holds the weights
        ray.get([engine.load_weights.remote(state[0], version) for engine in engines] + state[1:])


class InProcessSync(WeightSync):
    """One engine inside each policy rank's actor takes that rank's weights without leaving the process."""

    engines_inside_policy = True

    def transfer(self, policy: RoleGroup, engines: Sequence[ray.actor.ActorHandle], version: int) -> None:
        policy.load_own_engine(version).result()


WEIGHT_SYNCS: dict[str, type[WeightSync]] = {
    "broadcast": BroadcastSync,
    "object_store": ObjectStoreSync,
    "in_process": InProcessSync,
}
"""``rollout.weight_sync`` -> its strategy."""


def create_weight_sync(cfg: Config) -> WeightSync:
    return WEIGHT_SYNCS[cfg.rollout.weight_sync](cfg)
