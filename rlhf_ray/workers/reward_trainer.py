"""A rank of the reward-model stage: a sequence scorer trained on preference pairs (Bradley-Terry)."""

from __future__ import annotations

import torch

from rlhf_ray.algorithms import bradley_terry_loss
from rlhf_ray.config.schema import OptimizationConfig
from rlhf_ray.data.preferences import PreferenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.models import load_sequence_score_model
from rlhf_ray.models.forward import pair_scores
from rlhf_ray.workers.base import TrainedRoleWorker


class RewardTrainerWorker(TrainedRoleWorker):
    @property
    def _train_config(self) -> OptimizationConfig:
        return self.cfg.reward_model.train

    @dispatch(Dispatch.ALL)
    def setup(self, model_path: str, total_steps: int) -> None:
        self._start_engine(
            lambda: load_sequence_score_model(
                model_path, "float32", role="reward_model", attention=self.device_profile.attention
            ),
            total_steps,
        )

    @dispatch(Dispatch.EVEN)
    def update(self, pairs: PreferenceBatch) -> dict[str, float]:
        """One optimizer step on this rank's pairs: -log sigmoid(chosen - rejected [- margin]), each pair
        weighted by its ``weight`` over the whole step (so a ranking counts once however its pairs fall)."""

        def loss_fn(model: torch.nn.Module, micro: PreferenceBatch):
            chosen, rejected = pair_scores(model, micro).unbind(-1)
            loss, accuracy = bradley_terry_loss(chosen, rejected, micro.margin, micro.weight)
            return loss, {"accuracy": accuracy, "margin": (chosen - rejected).mean().detach()}

        return self._train(pairs, loss_fn, units=lambda micro: float(micro.weight.sum()))

    @dispatch(Dispatch.SHARDED)
    def pair_scores(self, pairs: PreferenceBatch) -> torch.Tensor:
        """[N, 2] scores of each pair's chosen and rejected response."""
        return self._forward(pair_scores, pairs)
