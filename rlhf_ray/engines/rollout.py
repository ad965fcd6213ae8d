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


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None]
    ) -> list[list[Sample]]:
        """``sampling.n`` samples for each prompt; prompt ``i`` is seeded with ``seeds[i]``."""

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
