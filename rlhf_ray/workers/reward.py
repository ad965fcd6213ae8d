"""The reward: one scalar per (prompt, response), from a sequence-scoring model, Python functions or a
reward server.

A reward function's output is checked by ``rlhf_ray.rewards.functions``: a reward is never silently
replaced by zero. Several functions make the reward as their weighted sum.
"""

from __future__ import annotations

import torch

from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.engines.deepspeed_engine import InferenceEngine
from rlhf_ray.models import load_sequence_score_model
from rlhf_ray.models.forward import sequence_scores
from rlhf_ray.models.reward_stats import RewardStats
from rlhf_ray.rewards.functions import RewardSum, call_reward_function, import_reward_function, reward_arguments
from rlhf_ray.rewards.http import RewardClient
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
            compile=model.compile,
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
        specs = [f.function for f in self.cfg.reward.weighted_functions()]
        self.functions = [(spec, import_reward_function(spec)) for spec in specs]
        self.sum = RewardSum.of(self.cfg.reward)

    @dispatch(Dispatch.SHARDED)
    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B] rewards: the weighted sum of the functions' values, clipped."""
        return self.sum.total(self._values(batch))

    @dispatch(Dispatch.SHARDED)
    def function_scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B, F] values of each of the F functions, in the order of ``reward.functions`` (``RewardSum`` makes
        them the reward)."""
        return self._values(batch)

    def _values(self, batch: SequenceBatch) -> torch.Tensor:
        arguments = reward_arguments(batch.texts, batch.columns)
        values = [call_reward_function(function, spec, arguments, len(batch)) for spec, function in self.functions]
        return torch.stack(values, dim=1)


class RewardServerWorker(RoleWorker):
    """A client of the reward server at ``reward.server.url``."""

    @dispatch(Dispatch.ALL)
    def setup(self) -> None:
        self.client = RewardClient(self.cfg.reward.server)

    @dispatch(Dispatch.SHARDED)
    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B] the server's scores, clipped."""
        return _clipped(self.client.scores(reward_arguments(batch.texts, batch.columns)), self.cfg.reward.clip)
