"""The reward: one scalar per (prompt, response), from a sequence-scoring model or a Python function.

A reward function's output is checked by ``rlhf_ray.rewards.functions``: a reward is never silently
replaced by zero.
"""

from __future__ import annotations

import torch

from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.engines.deepspeed_engine import InferenceEngine
from rlhf_ray.models import load_sequence_score_model
from rlhf_ray.models.forward import sequence_scores
from rlhf_ray.models.reward_stats import RewardStats
from rlhf_ray.rewards.functions import call_reward_function, import_reward_function
from rlhf_ray.workers.base import FrozenRoleWorker, RoleWorker


def _clipped(scores: torch.Tensor, clip: float | None) -> torch.Tensor:
    return scores if clip is None else scores.clamp(-clip, clip)


class RewardModelWorker(FrozenRoleWorker):
    @dispatch(Dispatch.ALL)
    def setup(self, model_path: str) -> None:
        model = self.cfg.models.reward
        self.engine = InferenceEngine(
            lambda: load_sequence_score_model(
                model_path, model.dtype, role="reward", attention=self.device_profile.attention
            ),
            model.zero_stage,
            self.world_size,
            self.device_profile.torch_device,
        )
        self.stats = RewardStats.load(model_path) if self.cfg.reward.normalize else None

    @dispatch(Dispatch.SHARDED)
    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B] reward-model scores of the full sequences (standardised when ``reward.normalize``)."""
        scores = self._forward(sequence_scores, batch)
        if self.stats is not None:
            scores = (scores - self.stats.mean) / max(self.stats.std, 1e-6)
        return _clipped(scores, self.cfg.reward.clip)


class RewardFunctionWorker(RoleWorker):
    @dispatch(Dispatch.ALL)
    def setup(self) -> None:
        self.function = import_reward_function(self.cfg.reward.function)

    @dispatch(Dispatch.SHARDED)
    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B] scores from the configured function of (prompts, responses, labels)."""
        values = call_reward_function(self.function, self.cfg.reward.function, batch.texts, len(batch))
        return _clipped(values, self.cfg.reward.clip)
