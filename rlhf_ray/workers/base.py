"""What every role rank does, whatever its role: join the group, run forward passes in micro-batches,
and (for trained roles) train through the shared loop."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import ray
import torch
from transformers import AutoTokenizer

from rlhf_ray.algorithms import aggregation_units
from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.plugins import require_plugins
from rlhf_ray.config.schema import OptimizationConfig
from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.distributed.failures import own_log_file
from rlhf_ray.distributed.heap import freeze_heap
from rlhf_ray.distributed.process_group import destroy_process_group, init_process_group, rendezvous_address
from rlhf_ray.engines.deepspeed_engine import InferenceEngine, TrainingEngine
from rlhf_ray.workers.training_loop import LossFn, LossUnits, train_on_batch

PROCESS_GROUP_TIMEOUT_S = 1800.0
ModelForward = Callable[[torch.nn.Module, SequenceBatch], torch.Tensor]


class RoleWorker:
    """One rank of a role group; subclasses bind an engine to the role's methods."""

    holds_model: ClassVar[bool] = False
    """Whether the rank computes with a model (and so takes a share of its node's cores)."""

    def __init__(self, cfg: Config, rank: int, world_size: int, device: DeviceProfile):
        self.cfg = cfg
        self.rank = rank
        self.world_size = world_size
        self.device_profile = device
        require_plugins(cfg.algorithm.plugins)
        if cfg.resources.threads_per_actor is not None:
            torch.set_num_threads(cfg.resources.threads_per_actor)
        torch.manual_seed(cfg.seed + rank)

    def rendezvous_address(self) -> tuple[str, int]:
        return rendezvous_address()

    def share_cores(self, ranks_on_node: int) -> None:
        """``ranks_on_node`` ranks compute at once on this node in the coming phase: take an equal share
        of its cores. Only on CPU with ``resources.threads_per_actor`` unset; else the threads stay."""
        if self.cfg.resources.threads_per_actor is None and self.device_profile.kind == "cpu":
            # torch._C's own: vLLM replaces torch.set_num_threads with a no-op in a process hosting its engine.
            torch._C.set_num_threads(max(1, available_cores() // ranks_on_node))

    def freeze_heap(self) -> None:
        freeze_heap()

    def init_process_group(self, master_addr: str, master_port: int) -> None:
        init_process_group(
            self.rank, self.world_size, master_addr, master_port, self.device_profile.backend, PROCESS_GROUP_TIMEOUT_S
        )

    @dispatch(Dispatch.ALL)
    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def log_file(self) -> str:
        return own_log_file()

    def shutdown(self) -> None:
        destroy_process_group()


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup (container) CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return cores
    return cores if quota == "max" else max(1, min(cores, int(quota) // int(period)))


class ModelRoleWorker(RoleWorker):
    """A rank that holds a model and evaluates it in micro-batches."""

    holds_model = True

    def _inference_model(self) -> torch.nn.Module:
        raise NotImplementedError

    @torch.no_grad()
    def _forward(self, forward: ModelForward, batch: SequenceBatch) -> torch.Tensor:
        """``forward`` over consecutive micro-batches, outputs concatenated on the CPU."""
        model = self._inference_model()
        size = self.cfg.train.forward_micro_batch_size
        outputs = []
        for start in range(0, len(batch), size):
            micro = batch.select(range(start, min(start + size, len(batch)))).to(self.device_profile.torch_device)
            outputs.append(forward(model, micro).float().cpu())
        return torch.cat(outputs)


class FrozenRoleWorker(ModelRoleWorker):
    """A rank of a role that only evaluates a model (reference, reward model)."""

    engine: InferenceEngine

    def _inference_model(self) -> torch.nn.Module:
        return self.engine.module


def response_units(aggregation: str) -> LossUnits:
    """What a loss aggregated over response tokens by ``aggregation`` is the mean of, in a micro-batch."""
    return lambda micro: aggregation_units(micro.response_mask, aggregation)


class TrainedRoleWorker(ModelRoleWorker):
    """A rank of a model trained by DeepSpeed (policy, critic, SFT, reward model): its engine, training
    passes and state."""

    engine: TrainingEngine

    @property
    def _train_config(self) -> OptimizationConfig:
        """The config section that sets this model's optimisation."""
        raise NotImplementedError

    def _start_engine(self, build_model: Callable[[], torch.nn.Module], total_steps: int) -> None:
        self.engine = TrainingEngine(build_model, self._train_config, self.world_size, total_steps)

    def _inference_model(self) -> torch.nn.Module:
        self.engine.eval_mode()
        return self.engine.module

    def _train(
        self, batch: SequenceBatch, loss_fn: LossFn, epochs: int = 1, units: LossUnits | None = None
    ) -> dict[str, float]:
        """``train_on_batch`` with this role's micro-batch size; ``units`` as there."""
        # A different shuffle every update, the same on every run and after a resume (the optimizer
        # step count is part of the checkpoint).
        seed = self.cfg.seed + 1_000_003 * self.engine.optimizer_steps + self.rank
        micro_batch_size = self._train_config.micro_batch_size
        return train_on_batch(self.engine, batch, loss_fn, micro_batch_size, epochs, seed, units)

    @dispatch(Dispatch.RANK_ZERO)
    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """Full weights on rank 0 (every rank must call: a collective under ZeRO-3)."""
        return self.engine.full_state_dict()

    @dispatch(Dispatch.ALL)
    def save(self, directory: str) -> None:
        self.engine.save(directory)

    @dispatch(Dispatch.ALL)
    def export_hf(self, directory: str, source_folder: str) -> None:
        """Write the full model as a plain HF folder (every rank calls; rank 0 writes), with the tokenizer
        and configs of ``source_folder``; written aside and renamed when complete."""
        state = self.engine.full_state_dict()
        if self.rank != 0:
            return
        target = Path(directory)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        self.engine.module.save_pretrained(staging, state_dict=state)
        AutoTokenizer.from_pretrained(source_folder).save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    @dispatch(Dispatch.ALL)
    def load(self, directory: str) -> None:
        self.engine.load(directory)
