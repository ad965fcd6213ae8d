"""The role table: every row has its schema sections and its worker, and the helpers read it."""

import importlib

import pytest

from rlhf_ray.config import validate_config
from rlhf_ray.config.roles import ROLES
from rlhf_ray.config.schema import ROLE_NAMES, ModelsConfig, ResourcesConfig, TrainConfig
from rlhf_ray.distributed.dispatch import dispatch_mode
from tests.support.raw_configs import base

ALL_ROLES = ["policy", "critic", "reference", "reward"]


def test_every_role_has_its_sections_and_a_worker_that_declares_setup():
    assert tuple(role.name for role in ROLES) == ROLE_NAMES
    for role in ROLES:
        assert role.name in ModelsConfig.model_fields and role.name in ResourcesConfig.model_fields
        assert (role.name in TrainConfig.model_fields) == role.trained
        for source in ("model", "function"):
            cfg = validate_config(
                base(
                    reward={
                        "source": source,
                        "function": "rlhf_ray.rewards.demo:concise" if source == "function" else None,
                    }
                )
            )
            module, _, name = role.worker(cfg).partition(":")
            assert dispatch_mode(getattr(importlib.import_module(module), name), "setup") is not None


@pytest.mark.parametrize(
    ("algorithm", "reward", "active", "trained", "on_accelerator"),
    [
        ({}, {}, ALL_ROLES, ["policy", "critic"], ALL_ROLES),
        (
            {"advantage_estimator": "grpo", "kl": {"coef": 0}},
            {"source": "function", "function": "rlhf_ray.rewards.demo:concise"},
            ["policy", "reward"],
            ["policy"],
            ["policy"],
        ),
    ],
)  # fmt: skip
def test_the_schema_helpers_read_the_table(algorithm, reward, active, trained, on_accelerator):
    cfg = validate_config(base(algorithm=algorithm, reward=reward))
    assert cfg.active_roles() == active
    assert cfg.trained_roles() == trained
    assert [role for role in active if cfg.role_uses_accelerator(role)] == on_accelerator
