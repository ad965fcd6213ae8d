"""The reference policy: log-probs from the frozen initial policy, for the KL penalty."""

from __future__ import annotations

from functools import partial

import torch

from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.dispatch import Dispatch, dispatch
from rlhf_ray.engines.deepspeed_engine import InferenceEngine
from rlhf_ray.models import load_causal_lm
from rlhf_ray.models.forward import response_logprobs
from rlhf_ray.workers.base import FrozenRoleWorker


class ReferenceWorker(FrozenRoleWorker):
    @dispatch(Dispatch.ALL)
    def setup(self, model_path: str) -> None:
        model = self.cfg.models.reference
        self.engine = InferenceEngine(
            lambda: load_causal_lm(model_path, model.dtype, role="reference", attention=self.device_profile.attention),
            model.zero_stage,
            self.world_size,
            self.device_profile.torch_device,
            compile=model.compile,
        )

    @dispatch(Dispatch.SHARDED)
    def logprobs(self, batch: SequenceBatch) -> torch.Tensor:
        """[B, R] log-probs of the responses under the reference policy at the sampling temperature."""
        return self._forward(partial(response_logprobs, temperature=self.cfg.rollout.scoring_temperature), batch)
