"""A rank of the DPO stage: the policy trained on preference pairs with the DPO / cDPO / IPO loss, against
the reference, a frozen copy of the policy's starting weights held by the same rank.

The reference never changes in DPO, so each rank keeps its own copy (sharded with the policy under
ZeRO-3) and computes the reference log-probs of a micro-batch next to the policy's: no other role,
no pass over the data before training, and a resumed run reloads the reference from the same folder.
"""

from __future__ import annotations

import torch

from rlhf_ray.algorithms import dpo_loss
from rlhf_ray.config.schema import DPOConfig, OptimizationConfig
from rlhf_ray.data.preferences import PreferenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.engines.deepspeed_engine import InferenceEngine
from rlhf_ray.models import load_causal_lm
from rlhf_ray.models.forward import pair_logprobs
from rlhf_ray.workers.base import TrainedRoleWorker

LOSS_TYPES = {"dpo": "sigmoid", "cdpo": "sigmoid", "ipo": "ipo"}
"""``dpo.loss`` -> ``dpo_loss``'s ``loss_type`` (cDPO is the sigmoid loss with label smoothing)."""


def dpo_objective(
    logprobs: torch.Tensor, dpo: DPOConfig, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of pairs and what is logged of them, from their [N, 4] log-probs summed over each response:
    policy chosen, policy rejected, reference chosen, reference rejected; ``weight`` [N] as ``dpo_loss``'s."""
    policy_chosen, policy_rejected, reference_chosen, reference_rejected = logprobs.unbind(-1)
    loss, chosen_rewards, rejected_rewards = dpo_loss(
        policy_chosen,
        policy_rejected,
        reference_chosen,
        reference_rejected,
        beta=dpo.beta,
        loss_type=LOSS_TYPES[dpo.loss],
        label_smoothing=dpo.label_smoothing,
        weight=weight,
    )
    return loss, {
        "reward_accuracy": (chosen_rewards > rejected_rewards).float().mean(),
        "reward_margin": (chosen_rewards - rejected_rewards).mean(),
        "logps_chosen": policy_chosen.detach().mean(),
        "logps_rejected": policy_rejected.detach().mean(),
    }


class DPOWorker(TrainedRoleWorker):
    reference: InferenceEngine

    @property
    def _train_config(self) -> OptimizationConfig:
        return self.cfg.dpo.train

    @dispatch(Dispatch.ALL)
    def setup(self, model_path: str, total_steps: int) -> None:
        """The policy to train and its frozen reference, both from ``model_path``; the reference computes
        in the dtype the policy trains in, so that the two agree before the first step."""
        attention = self.device_profile.attention
        self._start_engine(lambda: load_causal_lm(model_path, "float32", role="dpo", attention=attention), total_steps)
        train = self._train_config
        self.reference = InferenceEngine(
            lambda: load_causal_lm(
                model_path, "bfloat16" if train.precision == "bf16" else "float32", role="dpo", attention=attention
            ),
            3 if train.zero_stage == 3 else 0,
            self.world_size,
            self.device_profile.torch_device,
            compile=train.compile,
        )

    def _policy_and_reference(self, model: torch.nn.Module, pairs: PreferenceBatch) -> torch.Tensor:
        """[N, 4] log-probs of each pair's responses, summed over their tokens: policy chosen, policy
        rejected, reference chosen, reference rejected."""
        with torch.no_grad():
            reference = pair_logprobs(self.reference.module, pairs)
        return torch.cat([pair_logprobs(model, pairs), reference], -1)

    @dispatch(Dispatch.EVEN)
    def update(self, pairs: PreferenceBatch) -> dict[str, float]:
        """One optimizer step on this rank's pairs: the DPO loss, mean over pairs weighted by their ``weight``
        over the whole step (so a ranking counts once)."""
        return self._train(
            pairs,
            lambda model, micro: dpo_objective(self._policy_and_reference(model, micro), self.cfg.dpo, micro.weight),
            units=lambda micro: float(micro.weight.sum()),
        )

    @dispatch(Dispatch.SHARDED)
    def pair_logprobs(self, pairs: PreferenceBatch) -> torch.Tensor:
        """[N, 4] log-probs as ``_policy_and_reference`` says, of the policy as it is now."""
        return self._forward(self._policy_and_reference, pairs)
