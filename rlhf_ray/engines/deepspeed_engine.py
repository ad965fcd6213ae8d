"""DeepSpeed engines for the roles: one for trained models, one for frozen ones.

Both run inside a role actor whose process group is already initialised. Under ZeRO-3 the model is
built while an ``HfDeepSpeedConfig`` is alive, so transformers creates it already sharded and still
runs its own weight initialisation (a bare ``deepspeed.zero.Init()`` would skip it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import deepspeed
import torch
import torch.distributed as dist
from transformers.integrations import HfDeepSpeedConfig

from rlhf_ray.config.schema import OptimizationConfig
from rlhf_ray.engines.schedule import lr_multiplier

ModelBuilder = Callable[[], torch.nn.Module]
_NEVER_PRINT = 10**12


def _base_config(zero_stage: int, bf16: bool, micro_batch_size: int, accumulation: int, world_size: int) -> dict:
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro_batch_size * accumulation * world_size,
        "zero_optimization": {"stage": zero_stage, "stage3_gather_16bit_weights_on_model_save": True},
        "bf16": {"enabled": bf16},
        "steps_per_print": _NEVER_PRINT,
        "wall_clock_breakdown": False,
    }


def training_config(train: OptimizationConfig, world_size: int) -> dict:
    """The DeepSpeed config of a trained role."""
    accumulation = train.global_batch_size // (train.micro_batch_size * world_size)
    config = _base_config(train.zero_stage, train.precision == "bf16", train.micro_batch_size, accumulation, world_size)
    config["gradient_clipping"] = train.grad_clip or 0.0
    config["zero_allow_untested_optimizer"] = True
    if train.offload_optimizer:
        config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if train.offload_params:
        config["zero_optimization"]["offload_param"] = {"device": "cpu", "pin_memory": True}
    return config


@contextlib.contextmanager
def _sharded_construction(config: dict) -> Iterator[None]:
    """Hold an HfDeepSpeedConfig while models are built, so ZeRO-3 shards them at construction."""
    holder = HfDeepSpeedConfig(config) if config["zero_optimization"]["stage"] == 3 else None
    try:
        yield
    finally:
        del holder


def _optimizer(model: torch.nn.Module, train: OptimizationConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if train.offload_optimizer:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, lr=train.lr, betas=train.adam_betas, weight_decay=train.weight_decay)
    fused = next(iter(params)).is_cuda
    return torch.optim.AdamW(
        params, lr=train.lr, betas=train.adam_betas, weight_decay=train.weight_decay, fused=fused or None
    )


@dataclass
class StepResult:
    """What an optimizer step reports."""

    grad_norm: float
    lr: float


class TrainingEngine:
    """A model trained with DeepSpeed: ZeRO 0-3, AdamW, warm-up + schedule, gradient clipping, gradient
    accumulation over micro-batches, optional gradient checkpointing."""

    def __init__(self, build_model: ModelBuilder, train: OptimizationConfig, world_size: int, total_steps: int):
        self.config = training_config(train, world_size)
        self.train = train
        with _sharded_construction(self.config):
            model = build_model()
        if train.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        optimizer = _optimizer(model, train)
        multiplier = lr_multiplier(train.lr_schedule, train.warmup_steps, total_steps, train.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=self.config
        )
        if train.compile:
            compile_transformer(self.engine.module)

    @property
    def module(self) -> torch.nn.Module:
        """The bare model, for forwards without gradients."""
        return self.engine.module

    @property
    def training_model(self) -> torch.nn.Module:
        """What training forwards call: the DeepSpeed engine, which passes attributes through to the model.
        Calling the bare model would skip the hooks ZeRO-3 gradient accumulation needs."""
        return self.engine

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def zero_stage(self) -> int:
        return self.config["zero_optimization"]["stage"]

    @property
    def optimizer_steps(self) -> int:
        """Optimizer steps taken so far (restored by ``load``)."""
        return self.engine.global_steps

    @property
    def accumulation_steps(self) -> int:
        return self.config["gradient_accumulation_steps"]

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate gradients of one micro-batch (DeepSpeed scales by the accumulation steps)."""
        self.engine.backward(loss)

    def step(self) -> StepResult | None:
        """Advance one micro-step; at an accumulation boundary the optimizer steps and this reports it."""
        at_boundary = self.engine.is_gradient_accumulation_boundary()
        # Plain fp32 ZeRO-0 clips without keeping the norm; the gradients are all-reduced already here.
        own_norm = self._grad_norm() if at_boundary and self._plain_fp32 else None
        lr = self.scheduler.get_last_lr()[0]
        self.engine.step()
        if not at_boundary:
            return None
        norm = own_norm if self._plain_fp32 else self.engine.get_global_grad_norm()
        return StepResult(grad_norm=float(norm), lr=lr)

    @property
    def _plain_fp32(self) -> bool:
        return self.zero_stage == 0 and not self.config["bf16"]["enabled"]

    def _grad_norm(self) -> float:
        norms = [torch.linalg.vector_norm(p.grad) for p in self.module.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0

    def train_mode(self) -> None:
        self.engine.train()

    def eval_mode(self) -> None:
        self.engine.eval()

    def save(self, directory: str | Path) -> None:
        """Model, optimizer and scheduler state of every rank (a collective)."""
        self.engine.save_checkpoint(str(directory), tag="state", save_latest=False)

    def load(self, directory: str | Path) -> None:
        self.engine.load_checkpoint(
            str(directory), tag="state", load_optimizer_states=True, load_lr_scheduler_states=True
        )

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Every parameter gathered in full (a collective); rank 0 gets the dict, others None."""
        return full_state_dict(self.module, self.zero_stage)


class InferenceEngine:
    """A frozen model: a full replica per rank (ZeRO 0) or sharded over the ranks (ZeRO 3)."""

    def __init__(
        self, build_model: ModelBuilder, zero_stage: int, world_size: int, device: torch.device, compile: bool = False
    ):
        """``compile``: ``compile_transformer`` the model (ZeRO 0 only)."""
        self.zero_stage = zero_stage
        if zero_stage == 0:
            self.module = build_model().to(device).eval()
            self.module.requires_grad_(False)
            if compile:
                compile_transformer(self.module)
            return
        config = _base_config(zero_stage, False, 1, 1, world_size)
        with _sharded_construction(config):
            model = build_model()
        model.requires_grad_(False)
        self.engine, *_ = deepspeed.initialize(model=model, config=config)
        self.engine.eval()
        self.module = self.engine.module

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        return full_state_dict(self.module, self.zero_stage)


def compile_transformer(model: torch.nn.Module) -> None:
    """``torch.compile`` the model's transformer in place, shapes dynamic (one compilation for every batch
    and sequence length): the parameters keep their names for checkpoints and weight syncs."""
    model.base_model.compile(dynamic=True)


def full_state_dict(module: torch.nn.Module, zero_stage: int) -> dict[str, torch.Tensor] | None:
    """Parameters and persistent buffers gathered in full on rank 0 (a collective under ZeRO-3)."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    state = {}
    for name, param in module.named_parameters():
        with deepspeed.zero.GatheredParameters([param], enabled=zero_stage == 3):
            if rank == 0:
                state[name] = param.detach().clone().cpu()
    if rank != 0:
        return None
    persistent = module.state_dict().keys()
    for name, buffer in module.named_buffers():
        if name in persistent:
            state[name] = buffer.detach().clone().cpu()
    return state
