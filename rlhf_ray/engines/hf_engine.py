"""The ``hf`` rollout engine: a whole call decoded in batches with a transformers model and a KV cache
(``decoding.py``), for models or machines vLLM does not serve, and for models so small that vLLM's
per-step bookkeeping outweighs their compute."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.schema import RolloutConfig
from rlhf_ray.data.samples import Sample
from rlhf_ray.distributed.weight_sync.buckets import SyncGroup, TensorSpec, receive_buckets
from rlhf_ray.engines.decoding import decode
from rlhf_ray.engines.rollout import SamplingSpec


def create_engine(model_path: str, cfg: Config, engine_index: int, device: DeviceProfile) -> HFEngine:
    return HFEngine(model_path, cfg.rollout, device.torch_device, device.attention)


class HFEngine:
    sync_ranks = 1

    def __init__(self, model_path: str, rollout: RolloutConfig, device: torch.device, attention: str = "sdpa"):
        from rlhf_ray.models import load_causal_lm, load_tokenizer

        self.model = load_causal_lm(model_path, rollout.dtype, role="rollout", attention=attention).to(device).eval()
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

    def kv_capacity(self) -> None:
        return None  # its cache grows with the batch

    def join_weight_sync(self, master_addr: str, master_port: int, first_rank: int, world_size: int, backend: str):
        self.sync_group = SyncGroup(master_addr, master_port, first_rank, world_size, backend)

    def receive_weights(self, plan: list[list[TensorSpec]]) -> None:
        self.load_weights(dict(receive_buckets(self.sync_group, plan, self.device)))

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
        missing = [name for name in missing if not name.endswith("inv_freq")]
        if missing or unexpected:
            raise ValueError(f"weights do not fit the rollout model: missing {missing}, unexpected {unexpected}")


def _generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
