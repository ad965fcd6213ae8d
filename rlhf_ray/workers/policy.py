"""The policy (actor): response log-probs, and the PPO update."""

from __future__ import annotations

from functools import partial

import torch

from rlhf_ray.algorithms import aggregate_loss, kl_estimate, ppo_policy_loss
from rlhf_ray.config.schema import RoleTrainingConfig
from rlhf_ray.data import SequenceBatch
from rlhf_ray.data.experience import rollout_correction
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.models import load_causal_lm
from rlhf_ray.models.forward import response_logprobs, response_logprobs_and_entropy
from rlhf_ray.workers.base import TrainedRoleWorker, response_units
from rlhf_ray.workers.weight_sender import InProcessRollout


class PolicyWorker(InProcessRollout, TrainedRoleWorker):
    @property
    def _train_config(self) -> RoleTrainingConfig:
        return self.cfg.train.policy

    @dispatch(Dispatch.ALL)
    def setup(self, model_path: str, total_steps: int) -> None:
        self._start_engine(
            lambda: load_causal_lm(model_path, "float32", role="policy", attention=self.device_profile.attention),
            total_steps,
        )

    @dispatch(Dispatch.SHARDED)
    def logprobs(self, batch: SequenceBatch) -> torch.Tensor:
        """[B, R] log-probs of the responses under the current policy at the sampling temperature."""
        return self._forward(partial(response_logprobs, temperature=self.cfg.rollout.scoring_temperature), batch)

    @dispatch(Dispatch.EVEN)
    def update(self, batch: SequenceBatch, kl_coef: float) -> dict[str, float | torch.Tensor]:
        """PPO epochs over this rank's share (needs advantages; ref_logprobs too when the KL is a loss term,
        is_weights with a rollout correction). Every term is aggregated over the optimizer step's tokens or
        sequences, as ``algorithm.loss_aggregation`` says.

        Without ``old_logprobs`` (the driver leaves them out when the update is one optimizer step:
        ``Config.old_logprobs_from_update``) the update's own forward gives them, detached, with the
        rollout correction's weights from them; they come back as ``old_logprobs`` [B, R]."""
        algo = self.cfg.algorithm
        kl_in_loss = algo.kl.placement == "loss" and kl_coef > 0
        temperature, max_length = self.cfg.rollout.scoring_temperature, self.cfg.rollout.max_response_tokens
        own_old_logprobs = batch.old_logprobs is None
        if own_old_logprobs:
            if not self.cfg.old_logprobs_from_update():
                raise ValueError(
                    "policy update without old_logprobs: only an update of one optimizer step gives its own"
                )
            old_logprobs = torch.zeros(batch.response_mask.shape)
            batch = batch.with_fields(columns={**batch.columns, _ROW: list(range(len(batch)))})

        def aggregate(per_token: torch.Tensor, micro: SequenceBatch) -> torch.Tensor:
            return aggregate_loss(per_token, micro.response_mask, algo.loss_aggregation, max_length)

        def loss_fn(model: torch.nn.Module, micro: SequenceBatch):
            logprobs, entropy = response_logprobs_and_entropy(model, micro, temperature)
            old, is_weights = micro.old_logprobs, micro.is_weights
            if own_old_logprobs:
                old = logprobs.detach()
                old_logprobs[micro.columns[_ROW]] = old.cpu()
                correction = rollout_correction(old, micro, algo)
                is_weights = None if correction is None else correction.weights
            loss, stats = ppo_policy_loss(
                logprobs,
                old,
                micro.advantages,
                micro.response_mask,
                clip_low=algo.clip_low,
                clip_high=algo.clip_high,
                dual_clip=algo.dual_clip,
                aggregation=algo.loss_aggregation,
                max_length=max_length,
                is_weights=is_weights,
            )
            entropy = aggregate(entropy, micro)
            metrics = {
                "policy_loss": loss.detach(),
                "clip_fraction": stats.clip_fraction,
                "approx_kl": stats.approx_kl,
                "entropy": entropy.detach(),
            }
            if kl_in_loss:
                kl = aggregate(kl_estimate(logprobs, micro.ref_logprobs, algo.kl.estimator), micro)
                loss = loss + kl_coef * kl
                metrics["kl_loss"] = kl.detach()
            if algo.entropy_coef:
                loss = loss - algo.entropy_coef * entropy
            return loss, metrics

        metrics = self._train(batch, loss_fn, self.cfg.train.policy.epochs, response_units(algo.loss_aggregation))
        return {**metrics, "old_logprobs": old_logprobs} if own_old_logprobs else metrics


_ROW = "_row_in_update"
"""A column the update adds to its batch: each sample's row, to put the log-probs of its shuffled
micro-batches back in order."""
