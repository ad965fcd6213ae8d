"""Optimisation of the trained models, the PPO loop, and the cluster each role runs on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rlhf_ray.config.schema.base import NonNegativeFloat, PositiveInt, Precision, Section


class OptimizationConfig(Section):
    """Optimisation of one trained model with DeepSpeed."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    """DeepSpeed ZeRO stage."""
    offload_optimizer: bool = False
    """Keep optimizer states in CPU memory (GPU only)."""
    offload_params: bool = False
    """Keep parameters in CPU memory (ZeRO-3 on GPU only)."""
    precision: Precision = "auto"
    """Training precision; bf16 keeps fp32 master weights. ``auto``: bf16 where the device computes it
    fast (GPUs, CPUs with avx512_bf16 or AMX), else fp32."""
    lr: Annotated[float, Field(gt=0.0)] = 1e-6
    """Peak learning rate (AdamW)."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """Schedule after the warm-up."""
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    """Linear warm-up length in optimizer steps."""
    min_lr_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    """Final learning rate of the cosine schedule, relative to ``lr``."""
    micro_batch_size: PositiveInt = 4
    """Samples per forward/backward on one rank."""
    global_batch_size: PositiveInt = 64
    """Samples per optimizer step over all ranks (gradient accumulation fills the gap)."""
    grad_clip: Annotated[float, Field(gt=0.0)] | None = 1.0
    """Gradient-norm clip; None disables it."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    compile: bool = False
    """``torch.compile`` the model's transformer (shapes dynamic, so once per process): the elementwise
    work between the matrix products fused, forward and backward. Pays on long runs: on 2 CPU cores in
    bf16 the benchmark policy's update takes 20-30 % less, after about 35 s of compiling (and 13 s
    more for a forward without gradients). ZeRO stages 0-2."""


class RoleTrainingConfig(OptimizationConfig):
    """Optimisation of a role trained by PPO (policy or critic)."""

    epochs: PositiveInt = 1
    """Passes over each rollout batch per PPO iteration."""


class CriticTrainingConfig(RoleTrainingConfig):
    """Optimisation of the critic: as the policy's, with a larger default learning rate."""

    lr: Annotated[float, Field(gt=0.0)] = 5e-6
    """Peak learning rate (AdamW); critics usually take a larger one than the policy."""


class TrainLoopSection(Section):
    """What ``train`` holds besides one section per trained role (``role_sections`` adds those)."""

    episodes: PositiveInt = 1
    """Passes over the prompt set."""
    max_steps: PositiveInt | None = None
    """Stop after this many PPO iterations, whatever ``episodes`` says."""
    eval_interval: Annotated[int, Field(ge=0)] = 0
    """Evaluate on ``data.eval_path`` every N iterations; 0 disables it."""
    forward_micro_batch_size: PositiveInt = 8
    """Samples per forward pass of the log-prob, value and reward computations."""


class RoleResources(Section):
    """How many ranks a role group has and how they spread over nodes."""

    num_nodes: PositiveInt = 1
    """Nodes the role's ranks spread over."""
    gpus_per_node: PositiveInt = 1
    """Ranks (one GPU each; one process each on CPU) per node."""

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.gpus_per_node


class ClusterSection(Section):
    """What ``resources`` holds besides one section per role and the colocation groups
    (``role_sections`` adds those)."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` picks CUDA when the cluster has GPUs, else the CPU (gloo)."""
    ray_address: str | None = None
    """Ray cluster to join (``HEAD:6379``); None starts a local one, or joins ``RAY_ADDRESS`` when set
    (as in a submitted job); ``local`` starts a local one even then (debug mode)."""
    num_nodes: PositiveInt = 1
    """Nodes in the cluster."""
    gpus_per_node: PositiveInt = 8
    """GPUs on each node (ignored on CPU)."""
    num_cpus: PositiveInt | None = None
    """Logical CPUs a local Ray cluster declares; None: exactly what the roles ask for."""
    cpus_per_actor: Annotated[float, Field(gt=0.0)] = 1.0
    """Logical CPUs each role rank and engine reserves."""
    threads_per_actor: PositiveInt | None = None
    """CPU threads for torch (and OpenMP) in each actor. None (on CPU): the ranks computing at once in
    each phase share their node's cores equally (the rollout engines, which generate alone, take them
    all); a number fixes every actor's threads."""
    shared_processes: bool = False
    """Each rank of a colocation group (``colocate``) is one process holding that rank of every role of
    the group, instead of a process per role: the libraries are loaded once, and the roles compute one
    after another, each with all the rank's cores (the hybrid-engine layout). On a small machine this
    saves a process's memory per role."""
    placement_timeout_s: Annotated[float, Field(gt=0.0)] = 120.0
    """How long to wait for the cluster to grant the placement before failing."""
    max_restarts: Annotated[int, Field(ge=0)] = 3
    """Recoveries a run may make: each time a role rank dies the driver starts the roles again from the
    newest complete checkpoint, and each time a rollout engine dies it restarts that engine; one more
    failure than this ends the run. 0: the first failure does."""
    env_vars: dict[str, str] = Field(default_factory=dict)
    """Environment variables of every role actor and rollout engine, e.g. ``NCCL_DEBUG: INFO`` or
    ``RAY_DEBUG: legacy``. They are part of the logged config: never put a secret here."""

    def role(self, name: str) -> RoleResources:
        return getattr(self, name)
