"""A rank of the SFT stage: the policy trained with cross-entropy on demonstrated responses."""

from __future__ import annotations

import torch

from rlhf_ray.algorithms import masked_count, masked_mean
from rlhf_ray.config.schema import OptimizationConfig
from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.models import load_causal_lm
from rlhf_ray.models.forward import response_logprobs
from rlhf_ray.workers.base import TrainedRoleWorker


class SFTWorker(TrainedRoleWorker):
    @property
    def _train_config(self) -> OptimizationConfig:
        return self.cfg.sft.train

    @dispatch(Dispatch.ALL)
    def setup(self, model_path: str, total_steps: int) -> None:
        self._start_engine(
            lambda: load_causal_lm(model_path, "float32", role="sft", attention=self.device_profile.attention),
            total_steps,
        )

    @dispatch(Dispatch.EVEN)
    def update(self, batch: SequenceBatch) -> dict[str, float]:
        """One optimizer step on this rank's share: mean negative log-likelihood of the step's response
        tokens (over every rank's)."""

        def loss_fn(model: torch.nn.Module, micro: SequenceBatch):
            loss = masked_mean(-response_logprobs(model, micro), micro.response_mask)
            return loss, {}

        return self._train(batch, loss_fn, units=lambda micro: int(masked_count(micro.response_mask)))

    @dispatch(Dispatch.SHARDED)
    def response_nll(self, batch: SequenceBatch) -> torch.Tensor:
        """[B] summed negative log-likelihood of each response."""
        return self._forward(lambda model, micro: -response_logprobs(model, micro).sum(-1), batch)
