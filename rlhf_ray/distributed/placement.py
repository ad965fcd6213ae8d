"""Reserving the plan's units as Ray placement groups before any role actor starts, and where each
rank of a role then goes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlhf_ray.config.placement_plan import PlacementError, PlacementUnit, check_fits


def cluster_nodes() -> list[dict[str, float]]:
    """Total resources of every alive node of the connected Ray cluster."""
    return [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]


@dataclass(frozen=True)
class RoleSlots:
    """Where the ranks of one role go: its unit's placement group and each rank's share of a bundle."""

    placement_group: PlacementGroup
    ranks_per_bundle: int
    world_size: int
    num_cpus: float
    num_gpus: float

    def actor_options(self, rank: int) -> dict:
        return {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.placement_group,
                placement_group_bundle_index=rank // self.ranks_per_bundle,
                placement_group_capture_child_tasks=False,
            ),
        }


def reserve(units: list[PlacementUnit], timeout_s: float) -> dict[str, RoleSlots]:
    """Create one placement group per unit and wait until the cluster grants all of them."""
    check_fits(units, cluster_nodes())
    groups = [
        placement_group([unit.bundle()] * unit.num_bundles, strategy="STRICT_SPREAD" if unit.spread else "PACK")
        for unit in units
    ]
    try:
        ray.get([group.ready() for group in groups], timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        pending = [unit.name for unit, group in zip(units, groups, strict=True) if not _is_ready(group)]
        for group in groups:
            remove_placement_group(group)
        raise PlacementError(
            f"the cluster did not grant the placement of {', '.join(pending)} within {timeout_s:g} s "
            "(resources.placement_timeout_s): other jobs may hold the resources, or nodes are missing"
        ) from None
    slots = {}
    for unit, group in zip(units, groups, strict=True):
        share = len(unit.roles)
        for role in unit.roles:
            slots[role] = RoleSlots(
                placement_group=group,
                ranks_per_bundle=unit.ranks_per_bundle,
                world_size=unit.world_size,
                num_cpus=unit.cpus_per_rank / share,
                num_gpus=unit.gpus_per_rank / share,
            )
    return slots


def _is_ready(group: PlacementGroup) -> bool:
    try:
        ray.get(group.ready(), timeout=0)
        return True
    except ray.exceptions.GetTimeoutError:
        return False


def release(slots: Mapping[str, RoleSlots]) -> None:
    for group in {id(s.placement_group): s.placement_group for s in slots.values()}.values():
        remove_placement_group(group)
