"""The policy's side of a weight sync: its rank 0 broadcasts buckets to the rollout engines, or, with
engines inside the policy's actors, every rank loads its own engine in-process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import deepspeed
import torch

from rlhf_ray.data.samples import Sample
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.distributed.weight_sync.buckets import DTYPES, SyncGroup, TensorSpec, bucket_plan, send_buckets
from rlhf_ray.engines.rollout import KVCapacity, SamplingSpec
from rlhf_ray.workers.rollout_worker import RolloutWorker


class WeightSender:
    """Mixed into the policy worker (which provides ``engine``, ``rank``, ``cfg``, ``device_profile``)."""

    def weight_specs(self, dtype: str) -> list[TensorSpec]:
        """Name, full shape and wire dtype of every parameter, in order."""
        return [
            TensorSpec(name, tuple(getattr(param, "ds_shape", param.shape)), dtype)
            for name, param in self.engine.module.named_parameters()
        ]

    def join_weight_sync(self, master_addr: str, master_port: int, world_size: int) -> None:
        """Rank 0 only: host the sync group as its rank 0."""
        self.sync_group = SyncGroup(master_addr, master_port, 0, world_size, self.device_profile.backend)

    @dispatch(Dispatch.ALL)
    @torch.no_grad()
    def broadcast_weights(self, plan: list[list[TensorSpec]]) -> None:
        """Every rank: gather each bucket's parameters (a collective under ZeRO-3); rank 0 sends them."""
        buckets = self._full_buckets(plan)
        if self.rank == 0:
            send_buckets(self.sync_group, buckets)
        else:
            for _ in buckets:
                pass

    def _full_buckets(self, plan: list[list[TensorSpec]]) -> Iterator[list[torch.Tensor]]:
        """Each bucket's parameters in full and in their wire dtype, on every rank (gathered under ZeRO-3)."""
        params = dict(self.engine.module.named_parameters())
        zero3 = self.engine.zero_stage == 3
        for bucket in plan:
            tensors = [params[spec.name] for spec in bucket]
            with deepspeed.zero.GatheredParameters(tensors, enabled=zero3):
                yield [t.detach().to(DTYPES[spec.dtype]) for t, spec in zip(tensors, bucket, strict=True)]


class InProcessRollout(WeightSender):
    """A rollout engine inside each policy rank (``rollout.weight_sync: in_process``): the driver calls
    the policy's actors as engines, and a sync copies each rank's weights into its own engine."""

    @dispatch(Dispatch.ALL)
    def start_rollout_engine(self, model_path: str) -> None:
        """After ``setup``: the engine, and the bucket plan every sync of it follows."""
        self.rollout = RolloutWorker(self.cfg, self.rank, self.device_profile, model_path)
        rollout = self.cfg.rollout
        self.engine_plan = bucket_plan(self.weight_specs(rollout.dtype), rollout.sync_bucket_bytes)

    def weights_version(self) -> int:
        return self.rollout.weights_version()

    def kv_capacity(self) -> KVCapacity | None:
        return self.rollout.kv_capacity()

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None], version: int
    ) -> list[list[Sample]]:
        return self.rollout.generate(prompts, sampling, seeds, version)

    @torch.no_grad()
    @dispatch(Dispatch.ALL)
    def load_own_engine(self, version: int) -> None:
        """Every rank (a collective under ZeRO-3): the current weights into this rank's engine."""
        state = {}
        for bucket, tensors in zip(self.engine_plan, self._full_buckets(self.engine_plan), strict=True):
            # A copy: the engine must not alias parameters the optimizer goes on changing (or ZeRO-3 frees).
            state.update((spec.name, tensor.clone()) for spec, tensor in zip(bucket, tensors, strict=True))
        self.rollout.load_weights(state, version)
