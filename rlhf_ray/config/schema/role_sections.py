"""The sections each row of the role table gives the schema: ``models.<role>``, ``resources.<role>``
and, for a trained role, ``train.<role>``; with them ``resources.colocate`` takes the table's names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import Field, create_model

from rlhf_ray.config.schema.base import Section
from rlhf_ray.config.schema.models import ModelsSection
from rlhf_ray.config.schema.roles import ROLES, RoleName, RoleSpec
from rlhf_ray.config.schema.training import ClusterSection, RoleResources, TrainLoopSection


def with_role_sections(
    name: str,
    base: type[Section],
    doc: str,
    section_of: Callable[[RoleSpec], type[Section] | None],
    about: Callable[[RoleSpec], str],
    roles: Iterable[RoleSpec] = ROLES,
    **extra_fields: Any,
) -> type[Section]:
    """``base`` with one field per role that has a section (``section_of``), named after the role."""
    fields = {
        role.name: (section, Field(default_factory=section, description=about(role)))
        for role in roles
        if (section := section_of(role)) is not None
    }
    return create_model(name, __base__=base, __doc__=doc, __module__=__name__, **fields, **extra_fields)


ModelsConfig = with_role_sections(
    "ModelsConfig", ModelsSection, "Which model each role holds.", lambda role: role.model, lambda role: role.about
)
TrainConfig = with_role_sections(
    "TrainConfig",
    TrainLoopSection,
    "The PPO loop and the optimisation of each trained role.",
    lambda role: role.training,
    lambda role: f"Optimisation of the {role.name}.",
)
ResourcesConfig = with_role_sections(
    "ResourcesConfig",
    ClusterSection,
    "The cluster and where each role runs.",
    lambda role: RoleResources,
    lambda role: f"Ranks of the {role.name}.",
    colocate=(
        list[list[RoleName]],
        Field(
            default_factory=list,
            description="Groups of roles sharing the same GPUs, e.g. ``[[policy, reference], [critic, reward]]``.",
        ),
    ),
)
