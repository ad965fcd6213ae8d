"""A local Ray cluster and tiny models for the role-group tests."""

import pytest
import ray

from rlhf_ray.config import validate_config
from rlhf_ray.models.paths import resolve_model_paths

TINY_MODELS = {"vocab_size": 512, "hidden_size": 64, "num_heads": 2, "intermediate_size": 128, "num_layers": 2}


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


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_paths(tiny_dir):
    return resolve_model_paths(role_config(tiny_dir))


@pytest.fixture(scope="module")
def local_ray():
    """A local cluster declaring more logical CPUs than cores, so every role fits on 2 cores."""
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
