"""A frozen model compiled (``models.<role>.compile``) computes what the plain transformers model does,
for every batch and sequence length."""

import pytest
import torch

from rlhf_ray.engines.deepspeed_engine import InferenceEngine
from rlhf_ray.models import load_causal_lm, load_sequence_score_model
from rlhf_ray.models.forward import response_logprobs, sequence_scores
from tests.support.tiny_roles import random_batch
from tests.workers.test_roles import EXACT, reference_logprobs, reference_scores

pytestmark = pytest.mark.slow


def frozen(build) -> torch.nn.Module:
    engine = InferenceEngine(build, zero_stage=0, world_size=1, device=torch.device("cpu"), compile=True)
    assert engine.module.base_model._compiled_call_impl is not None
    return engine.module


@torch.no_grad()
def test_compiled_reference_and_reward_equal_transformers(tiny_paths):
    reference = frozen(lambda: load_causal_lm(tiny_paths.reference, "float32"))
    reward = frozen(lambda: load_sequence_score_model(tiny_paths.reward, "float32"))
    for size, seed in ((7, 1), (3, 2)):  # other batch and sequence lengths: the same compiled model
        batch = random_batch(size, seed)
        logprobs = response_logprobs(reference, batch)
        assert (logprobs - reference_logprobs(tiny_paths.reference, batch)).abs().max() < EXACT
        assert (sequence_scores(reward, batch) - reference_scores(tiny_paths.reward, batch)).abs().max() < EXACT
