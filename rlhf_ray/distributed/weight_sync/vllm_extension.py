"""What every vLLM worker (one per tensor-parallel rank) does in a weight sync, as a worker extension:
join the sync group with the policy's rank 0, and load the buckets it broadcasts (or a state dict)
through vLLM's in-place ``reload_weights``. Each tensor-parallel rank receives the full tensors and
vLLM's loader keeps its own shard."""

from __future__ import annotations

import torch

from rlhf_ray.distributed.weight_sync.buckets import SyncGroup, TensorSpec, receive_buckets


class WeightSyncExtension:
    """Mixed into vLLM's worker class (``worker_extension_cls``); the worker provides ``rank`` (its
    tensor-parallel rank), ``device`` and ``reload_weights``."""

    def rlhf_join_weight_sync(
        self, master_addr: str, master_port: int, first_rank: int, world_size: int, backend: str
    ) -> None:
        self.rlhf_sync_group = SyncGroup(master_addr, master_port, first_rank + self.rank, world_size, backend)

    def rlhf_receive_weights(self, plan: list[list[TensorSpec]]) -> None:
        self.reload_weights(weights_iterator=receive_buckets(self.rlhf_sync_group, plan, self.device))

    def rlhf_load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.reload_weights(weights_iterator=iter(state_dict.items()))
