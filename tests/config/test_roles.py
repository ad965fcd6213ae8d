"""The role table: every row has its schema sections and its worker, and the helpers read it."""

import dataclasses
import importlib

import pytest
from pydantic import ValidationError

from rlhf_ray.config import validate_config
from rlhf_ray.config.schema import ROLE_NAMES, ROLES, ModelsConfig, ResourcesConfig, TrainConfig
from rlhf_ray.config.schema.models import ModelsSection
from rlhf_ray.config.schema.role_sections import with_role_sections
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


def test_a_new_row_brings_its_sections():
    judge = dataclasses.replace(ROLES[2], name="judge", about="A second frozen scorer.")
    models = with_role_sections(
        "Models", ModelsSection, "", lambda role: role.model, lambda role: role.about, (*ROLES, judge)
    )
    parsed = models.model_validate({"judge": {"path": "/m/judge", "dtype": "float32"}})
    assert (parsed.judge.path, parsed.judge.dtype, parsed.policy.path) == ("/m/judge", "float32", None)
    assert models.model_fields["judge"].description == "A second frozen scorer."
    with pytest.raises(ValidationError, match=r"judge\.zero_stage"):
        models.model_validate({"judge": {"zero_stage": 2}})
    assert "judge" not in ModelsConfig.model_fields


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


ONE_STEP = {"policy": {"micro_batch_size": 4, "global_batch_size": 32}}
KL_IN_LOSS = {"kl": {"estimator": "k3", "placement": "loss"}}


@pytest.mark.parametrize(
    ("algorithm", "train", "from_update"),
    [
        (KL_IN_LOSS, ONE_STEP, True),
        ({"kl": {"coef": 0}}, ONE_STEP, True),  # a KL in the reward, but no reference: no KL at all
        ({}, ONE_STEP, False),  # the KL in the reward needs them before the advantages
        (KL_IN_LOSS, {}, False),  # two optimizer steps: the second one's forward sees new weights
        (KL_IN_LOSS, {"policy": {**ONE_STEP["policy"], "epochs": 2}}, False),
        ({**KL_IN_LOSS, "old_logprobs": "rollout"}, ONE_STEP, False),  # the engines' are the old ones
    ],
)  # fmt: skip
def test_the_update_gives_the_old_logprobs_when_it_is_one_optimizer_step(algorithm, train, from_update):
    cfg = validate_config(base(algorithm={"advantage_estimator": "grpo", **algorithm}, train=train))
    assert cfg.old_logprobs_from_update() is from_update
