"""The policy's side of a weight sync: its rank 0 broadcasts buckets to the rollout engines."""

from __future__ import annotations

import deepspeed
import torch

from rlhf_ray.distributed.weight_sync import DTYPES, SyncGroup, TensorSpec, send_buckets


class WeightSender:
    """Mixed into the policy worker (which provides ``engine``, ``rank``, ``device_profile``)."""

    def weight_specs(self, dtype: str) -> list[TensorSpec]:
        """Name, full shape and wire dtype of every parameter, in order."""
        return [
            TensorSpec(name, tuple(getattr(param, "ds_shape", param.shape)), dtype)
            for name, param in self.engine.module.named_parameters()
        ]

    def join_weight_sync(self, master_addr: str, master_port: int, world_size: int) -> None:
        """Rank 0 only: host the sync group as its rank 0."""
        self.sync_group = SyncGroup(master_addr, master_port, 0, world_size, self.device_profile.backend)

    @torch.no_grad()
    def broadcast_weights(self, plan: list[list[TensorSpec]]) -> None:
        """Every rank: gather each bucket's parameters (a collective under ZeRO-3); rank 0 sends them."""
        params = dict(self.engine.module.named_parameters())
        zero3 = self.engine.zero_stage == 3

        def buckets():
            for bucket in plan:
                tensors = [params[spec.name] for spec in bucket]
                with deepspeed.zero.GatheredParameters(tensors, enabled=zero3):
                    if self.rank == 0:
                        yield [t.detach().to(DTYPES[spec.dtype]) for t, spec in zip(tensors, bucket, strict=True)]

        if self.rank == 0:
            send_buckets(self.sync_group, buckets())
        else:
            for _ in buckets():
                pass
