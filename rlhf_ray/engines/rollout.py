"""Rollout engines behind one interface: sample responses to prompt token ids, and take new weights.

One module per engine (``vllm_engine``, ``hf_engine``), each registering a factory under the name
``rollout.engine`` selects. Every engine returns, per prompt, ``n`` samples with their token ids, why
they ended, and optionally the log-prob of each sampled token under the distribution it was drawn
from: the logits divided by the temperature, cut by top-k / top-p and renormalised (at temperature 0,
the untempered softmax). Every engine takes new weights from the policy's broadcast (each process
holding the model joins the sync group) or as a state dict.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.schema import ROLLOUT_ENGINES, RolloutConfig
from rlhf_ray.data.samples import Sample
from rlhf_ray.distributed.weight_sync.buckets import TensorSpec


@dataclass(frozen=True)
class SamplingSpec:
    n: int
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    stop_token_ids: tuple[int, ...] = ()
    logprobs: bool = True
    seed: int | None = None
    """Base seed: prompt ``i`` of a call is sampled with ``seed + i * n``, whatever engine serves it; its
    samples take the ``n`` seeds from there on (vLLM seeds sample ``j`` of a request ``seed + j``)."""

    @classmethod
    def from_config(cls, rollout: RolloutConfig, seed: int | None) -> SamplingSpec:
        return cls(
            n=rollout.samples_per_prompt,
            temperature=rollout.temperature,
            top_p=rollout.top_p,
            top_k=rollout.top_k,
            max_new_tokens=rollout.max_new_tokens,
            stop_token_ids=tuple(rollout.stop_token_ids),
            logprobs=rollout.return_logprobs,
            seed=seed,
        )


CHUNKS_PER_ENGINE = 2


def calls_per_step(num_engines: int) -> int:
    """How many calls a step's prompts are split into: one per engine batches best; with several engines
    smaller chunks let a fast one take over a slow one's work."""
    return 1 if num_engines == 1 else num_engines * CHUNKS_PER_ENGINE


def cpu_kv_cache_bytes(cfg: Config, bytes_per_token: int, block_size: int) -> int:
    """``rollout.cpu_kv_cache_bytes``, or with ``auto`` what holds every sequence of one engine call at its
    longest (prompt and every turn), in whole blocks of ``block_size`` tokens, plus the block vLLM keeps
    aside: a step's share of an engine at once, and not a block more (the cache is most of an engine's
    memory beyond the libraries)."""
    rollout = cfg.rollout
    if rollout.cpu_kv_cache_bytes != "auto":
        return rollout.cpu_kv_cache_bytes
    prompts_per_call = -(-cfg.data.prompts_per_step // calls_per_step(rollout.num_engines))
    blocks_per_sequence = -(-(cfg.data.max_prompt_length + rollout.max_continuation_tokens) // block_size)
    blocks = prompts_per_call * rollout.samples_per_prompt * blocks_per_sequence + 1
    return blocks * block_size * bytes_per_token


@dataclass(frozen=True)
class KVCapacity:
    """What a vLLM engine holds at once: KV-cache blocks of ``block_size`` tokens, and sequences."""

    block_size: int
    num_blocks: int
    max_num_seqs: int


def kv_cache_shortfall(prompts: Sequence[Sequence[int]], sampling: SamplingSpec, capacity: KVCapacity) -> str | None:
    """Why a call's sequences cannot all run at once in a vLLM engine of ``capacity``, or None when they can
    (checked by the driver before it sends the call). vLLM then runs
    them in waves, the last of which may hold a few sequences only, and generation takes up to twice as
    long. (Prompt blocks that samples share through the prefix cache are counted once per sample.)"""
    sequences = len(prompts) * sampling.n
    if sequences > capacity.max_num_seqs:
        return (
            f"a rollout engine runs at most {capacity.max_num_seqs} sequences at once but was given {sequences}: they "
            "are generated in waves; add rollout.num_engines"
        )
    needed = sampling.n * sum(-(-(len(prompt) + sampling.max_new_tokens) // capacity.block_size) for prompt in prompts)
    usable = capacity.num_blocks - 1  # vLLM keeps one block aside
    if needed <= usable:
        return None
    return (
        f"the rollout engine's KV cache holds {usable} blocks of {capacity.block_size} tokens but {sequences} "
        f"sequences need {needed}: they are generated in waves; raise rollout.cpu_kv_cache_bytes (CPU) or "
        "rollout.gpu_memory_utilization (GPU)"
    )


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None]
    ) -> list[list[Sample]]:
        """``sampling.n`` samples for each prompt; prompt ``i`` is seeded with ``seeds[i]``."""

    def kv_capacity(self) -> KVCapacity | None:
        """What the engine holds at once, for the driver to warn when a call cannot run in one wave (None:
        no fixed capacity)."""

    sync_ranks: int
    """Members this engine adds to the weight-sync group (one per process holding the model)."""

    def join_weight_sync(self, master_addr: str, master_port: int, first_rank: int, world_size: int, backend: str):
        """Join the sync group as ranks ``first_rank`` .. ``first_rank + sync_ranks - 1``."""

    def receive_weights(self, plan: list[list[TensorSpec]]) -> None:
        """Load the buckets the policy's rank 0 broadcasts next (HF checkpoint names)."""

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Replace the model's weights with these (HF checkpoint names)."""


EngineFactory = Callable[[str, Config, int, DeviceProfile], RolloutEngine]
"""(model folder, config, engine index, device) -> an engine holding the folder's weights."""


def create_rollout_engine(model_path: str, cfg: Config, engine_index: int, device: DeviceProfile) -> RolloutEngine:
    factory: EngineFactory = importlib.import_module(ROLLOUT_ENGINES[cfg.rollout.engine]).create_engine
    return factory(model_path, cfg, engine_index, device)
