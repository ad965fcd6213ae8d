"""The engine role: one rollout engine per actor, holding a known version of the policy's weights."""

from __future__ import annotations

import os
from collections.abc import Sequence

import ray
import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import engines_per_node
from rlhf_ray.data.samples import Sample
from rlhf_ray.distributed.failures import own_log_file
from rlhf_ray.distributed.faults import fault_point
from rlhf_ray.distributed.weight_sync.buckets import TensorSpec
from rlhf_ray.engines.rollout import KVCapacity, RolloutEngine, SamplingSpec, create_rollout_engine
from rlhf_ray.workers.base import available_cores


class StaleWeightsError(RuntimeError):
    """An engine was asked to generate with another policy version than it holds."""


class RolloutWorker:
    def __init__(self, cfg: Config, engine_index: int, device: DeviceProfile, model_path: str):
        self.index = engine_index
        self.device = device
        self.version = 0
        if device.kind == "cpu" and cfg.resources.threads_per_actor is None:
            _share_cores_between_engines(cfg)
        self.engine: RolloutEngine = create_rollout_engine(model_path, cfg, engine_index, device)

    def weights_version(self) -> int:
        return self.version

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def log_file(self) -> str:
        return own_log_file()

    @fault_point
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        sampling: SamplingSpec,
        seeds: Sequence[int | None],
        expected_version: int,
    ) -> list[list[Sample]]:
        if self.version != expected_version:
            raise StaleWeightsError(
                f"rollout engine {self.index} holds policy version {self.version} but version {expected_version} "
                "was asked for: sync the weights before generating"
            )
        return self.engine.generate(prompts, sampling, seeds)

    def kv_capacity(self) -> KVCapacity | None:
        return self.engine.kv_capacity()

    def sync_ranks(self) -> int:
        """Members this engine adds to the weight-sync group (its tensor-parallel workers)."""
        return self.engine.sync_ranks

    def join_weight_sync(self, master_addr: str, master_port: int, first_rank: int, world_size: int) -> None:
        self.engine.join_weight_sync(master_addr, master_port, first_rank, world_size, self.device.backend)

    @fault_point
    def receive_weights(self, plan: list[list[TensorSpec]], version: int) -> None:
        """Take the buckets policy rank 0 broadcasts; afterwards this engine holds ``version``."""
        self.engine.receive_weights(plan)
        self.version = version

    @fault_point
    def load_weights(self, state_dict: dict[str, torch.Tensor], version: int) -> None:
        """Take weights through the object store."""
        self.engine.load_weights(state_dict)
        self.version = version


def _share_cores_between_engines(cfg: Config) -> None:
    """Engines generate while the roles wait, so the engines of a node (and their tensor-parallel
    processes) share all its cores; engines generating ahead leave a share to the role computing beside
    them."""
    rollout = cfg.rollout
    processes = engines_per_node(rollout) * rollout.tensor_parallel_size + (1 if rollout.async_steps else 0)
    threads = max(1, available_cores() // processes)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # vLLM keeps it, and its worker processes inherit it
    torch.set_num_threads(threads)
