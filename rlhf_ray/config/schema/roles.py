"""The role table: one row per role of a PPO experiment, read wherever roles are listed (the schema's
sections and helpers, the checks, the debug overlay, the model folders, the groups that start the
actors).

A role is its worker module (methods declared with ``@dispatch``) and its row here: the row's sections
become ``models.<role>``, ``resources.<role>`` and, when it is trained, ``train.<role>``
(``role_sections``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rlhf_ray.algorithms import ADVANTAGE_ESTIMATORS
from rlhf_ray.config.schema.base import Section
from rlhf_ray.config.schema.models import FrozenModelConfig, TrainableModelConfig
from rlhf_ray.config.schema.training import CriticTrainingConfig, RoleTrainingConfig

if TYPE_CHECKING:
    from rlhf_ray.config.schema import Config

ModelFolder = Callable[["Config", Any, "str | None"], "str | None"]
"""(config, the tiny build or None, the policy's folder; None for the policy itself) -> the role's
model folder (None: no model)."""


@dataclass(frozen=True)
class RoleSpec:
    name: str
    about: str
    """What the role's model is (the documentation of ``models.<name>``)."""
    worker: Callable[[Config], str]
    """``module:Class`` of the role's ranks, for this config."""
    model: type[Section]
    """The section of ``models.<name>``: where the model loads from, and how when frozen."""
    training: type[Section] | None
    """The section of ``train.<name>`` for a role trained with PPO (checkpoints hold it); None: frozen."""
    active: Callable[[Config], bool]
    """Whether the experiment creates the role's actors."""
    uses_accelerator: Callable[[Config], bool]
    """Whether each rank needs a GPU."""
    model_folder: ModelFolder
    """Where the role's model loads from."""

    @property
    def trained(self) -> bool:
        return self.training is not None


def _always(cfg: Config) -> bool:
    return True


_REWARD_WORKERS = {"model": "RewardModelWorker", "function": "RewardFunctionWorker", "http": "RewardServerWorker"}

ROLES: tuple[RoleSpec, ...] = (
    RoleSpec(
        "policy",
        about="The policy (actor): a causal LM, trained with PPO and served by the rollout engines.",
        worker=lambda cfg: "rlhf_ray.workers.policy:PolicyWorker",
        model=TrainableModelConfig,
        training=RoleTrainingConfig,
        active=_always,
        uses_accelerator=_always,
        model_folder=lambda cfg, tiny, policy: cfg.models.policy.path or str(tiny.policy),
    ),
    RoleSpec(
        "critic",
        about="The critic: per-token values. Used only by advantage estimators that need one (``gae``).",
        worker=lambda cfg: "rlhf_ray.workers.critic:CriticWorker",
        model=TrainableModelConfig,
        training=CriticTrainingConfig,
        active=lambda cfg: ADVANTAGE_ESTIMATORS[cfg.algorithm.advantage_estimator].needs_critic,
        uses_accelerator=_always,
        model_folder=lambda cfg, tiny, policy: cfg.models.critic.path or (str(tiny.value) if tiny else policy),
    ),
    RoleSpec(
        "reference",
        about="The frozen reference policy for the KL penalty. Unused when ``algorithm.kl.coef`` is 0.",
        worker=lambda cfg: "rlhf_ray.workers.reference:ReferenceWorker",
        model=FrozenModelConfig,
        training=None,
        active=lambda cfg: cfg.algorithm.kl.coef > 0,
        uses_accelerator=_always,
        model_folder=lambda cfg, tiny, policy: cfg.models.reference.path or policy,
    ),
    RoleSpec(
        "reward",
        about="The reward: a sequence-scoring model, Python functions or a server's client (``reward.source``).",
        worker=lambda cfg: "rlhf_ray.workers.reward:" + _REWARD_WORKERS[cfg.reward.source],
        model=FrozenModelConfig,
        training=None,
        active=_always,
        uses_accelerator=lambda cfg: cfg.reward.source == "model",  # functions and clients run on a CPU
        model_folder=lambda cfg, tiny, policy: (
            (cfg.models.reward.path or str(tiny.reward)) if cfg.reward.source == "model" else None
        ),
    ),
)
ROLE_SPECS = {role.name: role for role in ROLES}
ROLE_NAMES: tuple[str, ...] = tuple(ROLE_SPECS)
RoleName = Literal[ROLE_NAMES]  # type: ignore[valid-type]
"""A role's name, checked against the table."""
