"""The critic: per-token values, and the clipped value update."""

from __future__ import annotations

import torch

from rlhf_ray.algorithms import clipped_value_loss
from rlhf_ray.config.schema import RoleTrainingConfig
from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.models import load_value_model
from rlhf_ray.models.forward import response_values
from rlhf_ray.workers.base import TrainedRoleWorker, response_units


class CriticWorker(TrainedRoleWorker):
    @property
    def _train_config(self) -> RoleTrainingConfig:
        return self.cfg.train.critic

    @dispatch(Dispatch.ALL)
    def setup(self, model_path: str, total_steps: int) -> None:
        self._start_engine(
            lambda: load_value_model(model_path, "float32", role="critic", attention=self.device_profile.attention),
            total_steps,
        )

    @dispatch(Dispatch.SHARDED)
    def values(self, batch: SequenceBatch) -> torch.Tensor:
        """[B, R] values of the states before each response token."""
        return self._forward(response_values, batch)

    @dispatch(Dispatch.EVEN)
    def update(self, batch: SequenceBatch) -> dict[str, float]:
        """Value epochs over this rank's share of the batch (needs values and returns)."""
        algo = self.cfg.algorithm

        def loss_fn(model: torch.nn.Module, micro: SequenceBatch):
            values = response_values(model, micro)
            loss, clip_fraction = clipped_value_loss(
                values,
                micro.values,
                micro.returns,
                micro.response_mask,
                clip=algo.value_clip,
                aggregation=algo.loss_aggregation,
                max_length=self.cfg.rollout.max_response_tokens,
            )
            return loss, {"value_loss": loss.detach(), "value_clip_fraction": clip_fraction}

        return self._train(batch, loss_fn, self.cfg.train.critic.epochs, response_units(algo.loss_aggregation))
