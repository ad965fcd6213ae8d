"""Configs and batches for tests that start roles: tiny models, fp32, CPU."""

import torch

from rlhf_ray.config import validate_config
from rlhf_ray.data import SequenceBatch, pack_sequences

TINY_MODELS = {"vocab_size": 512, "hidden_size": 64, "num_heads": 2, "intermediate_size": 128, "num_layers": 2}


def policy_training(stage: int, lr: float, **changes) -> dict:
    """``train.policy`` for a 2-rank fp32 policy: micro-batches of 2, one optimizer step per 8 samples."""
    return {
        "precision": "fp32",
        "zero_stage": stage,
        "micro_batch_size": 2,
        "global_batch_size": 8,
        "lr": lr,
        **changes,
    }


def role_config(tmp_dir, **sections):
    """A CPU config of tiny models with fp32 everywhere; ``sections`` are merged one level deep."""
    raw = {
        "seed": 0,
        "models": {
            "tiny": {**TINY_MODELS, "output_dir": str(tmp_dir)},
            "reference": {"dtype": "float32"},
            "reward": {"dtype": "float32"},
        },
        "rollout": {"samples_per_prompt": 2},
        "data": {"prompts_per_step": 4},
        "train": {
            "forward_micro_batch_size": 3,
            "policy": {"precision": "fp32", "micro_batch_size": 2, "global_batch_size": 8, "lr": 1e-3},
            "critic": {"precision": "fp32", "micro_batch_size": 2, "global_batch_size": 8, "lr": 1e-3},
        },
        "resources": {"device": "cpu"},
    }
    for name, value in sections.items():
        raw[name] = {**raw.get(name, {}), **value}
    return validate_config(raw)


def random_batch(size: int, seed: int) -> SequenceBatch:
    """Prompts of 2-6 tokens and responses of 1-5 tokens, so both paddings occur."""
    gen = torch.Generator().manual_seed(seed)
    vocab = TINY_MODELS["vocab_size"]
    prompts = [
        torch.randint(3, vocab, (int(n),), generator=gen).tolist() for n in torch.randint(2, 7, (size,), generator=gen)
    ]
    responses = [
        torch.randint(3, vocab, (int(n),), generator=gen).tolist() for n in torch.randint(1, 6, (size,), generator=gen)
    ]
    return pack_sequences(prompts, responses, pad_token_id=0)
