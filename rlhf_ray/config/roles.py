"""The role table: one row per role of a PPO experiment, read wherever roles are listed (the schema's
helpers, the checks, the debug overlay, the model folders, the groups that start the actors).

A role is its worker module (methods declared with ``@dispatch``), its row here, and its sections of
the schema (``models.<role>``, ``resources.<role>``, and ``train.<role>`` when it is trained).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlhf_ray.algorithms import ADVANTAGE_ESTIMATORS

if TYPE_CHECKING:
    from rlhf_ray.config.schema import Config

ModelFolder = Callable[["Config", Any, "str | None"], "str | None"]
"""(config, the tiny build or None, the policy's folder; None for the policy itself) -> the role's
model folder (None: no model)."""


@dataclass(frozen=True)
class RoleSpec:
    name: str
    worker: Callable[[Config], str]
    """``module:Class`` of the role's ranks, for this config."""
    trained: bool
    """Trained with PPO: ``train.<name>`` sets its optimisation and checkpoints hold it."""
    active: Callable[[Config], bool]
    """Whether the experiment creates the role's actors."""
    uses_accelerator: Callable[[Config], bool]
    """Whether each rank needs a GPU."""
    model_folder: ModelFolder
    """Where the role's model loads from."""


def _always(cfg: Config) -> bool:
    return True


ROLES: tuple[RoleSpec, ...] = (
    RoleSpec(
        "policy",
        worker=lambda cfg: "rlhf_ray.workers.policy:PolicyWorker",
        trained=True,
        active=_always,
        uses_accelerator=_always,
        model_folder=lambda cfg, tiny, policy: cfg.models.policy.path or str(tiny.policy),
    ),
    RoleSpec(
        "critic",
        worker=lambda cfg: "rlhf_ray.workers.critic:CriticWorker",
        trained=True,
        active=lambda cfg: ADVANTAGE_ESTIMATORS[cfg.algorithm.advantage_estimator].needs_critic,
        uses_accelerator=_always,
        model_folder=lambda cfg, tiny, policy: cfg.models.critic.path or (str(tiny.value) if tiny else policy),
    ),
    RoleSpec(
        "reference",
        worker=lambda cfg: "rlhf_ray.workers.reference:ReferenceWorker",
        trained=False,
        active=lambda cfg: cfg.algorithm.kl.coef > 0,
        uses_accelerator=_always,
        model_folder=lambda cfg, tiny, policy: cfg.models.reference.path or policy,
    ),
    RoleSpec(
        "reward",
        worker=lambda cfg: (
            "rlhf_ray.workers.reward:"
            + ("RewardModelWorker" if cfg.reward.source == "model" else "RewardFunctionWorker")
        ),
        trained=False,
        active=_always,
        uses_accelerator=lambda cfg: cfg.reward.source == "model",  # a reward function runs on a CPU
        model_folder=lambda cfg, tiny, policy: (
            (cfg.models.reward.path or str(tiny.reward)) if cfg.reward.source == "model" else None
        ),
    ),
)
ROLE_SPECS = {role.name: role for role in ROLES}
