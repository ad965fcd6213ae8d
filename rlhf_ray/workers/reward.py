"""The reward: one scalar per (prompt, response), from a sequence-scoring model or a Python function.

A reward function that fails, returns the wrong number of values, or returns a non-finite value for
a sample raises ``RewardError`` naming the samples: a reward is never silently replaced by zero.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence

import torch

from rlhf_ray.data import SequenceBatch
from rlhf_ray.engines.deepspeed_engine import InferenceEngine
from rlhf_ray.models import load_sequence_score_model
from rlhf_ray.models.forward import sequence_scores
from rlhf_ray.workers.base import FrozenRoleWorker, RoleWorker


class RewardError(RuntimeError):
    """The reward of some samples could not be computed."""


def _clipped(scores: torch.Tensor, clip: float | None) -> torch.Tensor:
    return scores if clip is None else scores.clamp(-clip, clip)


class RewardModelWorker(FrozenRoleWorker):
    def setup(self, model_path: str) -> None:
        model = self.cfg.models.reward
        self.engine = InferenceEngine(
            lambda: load_sequence_score_model(model_path, model.dtype, role="reward"),
            model.zero_stage,
            self.world_size,
            self.device_profile.torch_device,
        )

    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B] reward-model scores of the full sequences."""
        return _clipped(self._forward(sequence_scores, batch), self.cfg.reward.clip)


def import_reward_function(spec: str) -> Callable[..., Sequence[float]]:
    module_name, _, name = spec.partition(":")
    return getattr(importlib.import_module(module_name), name)


class RewardFunctionWorker(RoleWorker):
    def setup(self) -> None:
        self.function = import_reward_function(self.cfg.reward.function)

    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B] scores from the configured function of (prompts, responses, labels)."""
        prompts, responses = batch.texts.get("prompt"), batch.texts.get("response")
        if prompts is None or responses is None:
            raise RewardError("a reward function needs the decoded prompt and response texts in the batch")
        labels = batch.texts.get("label", [None] * len(batch))
        name = self.cfg.reward.function
        try:
            values = list(self.function(prompts, responses, labels))
        except Exception as exc:
            raise RewardError(f"reward function {name} failed on a batch of {len(batch)}: {exc!r}") from exc
        if len(values) != len(batch):
            raise RewardError(f"reward function {name} returned {len(values)} values for {len(batch)} samples")
        bad = [i for i, value in enumerate(values) if not _is_finite_number(value)]
        if bad:
            shown = "; ".join(f"sample {i}: {values[i]!r} for response {responses[i][:60]!r}" for i in bad[:5])
            raise RewardError(f"reward function {name} returned no finite number for {len(bad)} sample(s): {shown}")
        return _clipped(torch.tensor(values, dtype=torch.float32), self.cfg.reward.clip)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
