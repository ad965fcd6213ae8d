"""Where every role's ranks run: decided once from the config, checked against the cluster, then
reserved as Ray placement groups before any role actor starts.

A *unit* is a set of devices some roles share: one role on its own, or a colocation group. It has
``num_bundles`` x ``ranks_per_bundle`` rank slots. A role unit has one bundle per node, spread over
distinct nodes, so its ranks land on exactly the nodes the config asks for; roles colocated in a
unit split each slot's GPU and CPUs evenly. The rollout unit has one bundle per engine, packed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlhf_ray.config import Config
from rlhf_ray.distributed.device import DeviceProfile


class PlacementError(RuntimeError):
    """The cluster cannot hold what the config asks for."""


@dataclass(frozen=True)
class PlacementUnit:
    roles: tuple[str, ...]
    num_bundles: int
    ranks_per_bundle: int
    cpus_per_rank: float
    gpus_per_rank: int
    spread: bool
    """Each bundle on a node of its own (a role over several nodes), or packed together."""

    @property
    def name(self) -> str:
        return "+".join(self.roles)

    @property
    def world_size(self) -> int:
        return self.num_bundles * self.ranks_per_bundle

    def bundle(self) -> dict[str, float]:
        bundle = {"CPU": self.cpus_per_rank * self.ranks_per_bundle}
        if self.gpus_per_rank:
            bundle["GPU"] = float(self.gpus_per_rank * self.ranks_per_bundle)
        return bundle

    def total(self) -> dict[str, float]:
        return {key: value * self.num_bundles for key, value in self.bundle().items()}


def plan_placement(cfg: Config, device: DeviceProfile, roles: Iterable[str]) -> list[PlacementUnit]:
    """The units for ``roles`` (each listed role once; colocation groups from the config)."""
    roles = list(roles)
    units = []
    placed: set[str] = set()
    for group in cfg.resources.colocate:
        members = tuple(role for role in group if role in roles)
        if members:
            units.append(_unit(cfg, device, members))
            placed.update(members)
    units.extend(_unit(cfg, device, (role,)) for role in roles if role not in placed)
    return units


def _unit(cfg: Config, device: DeviceProfile, roles: tuple[str, ...]) -> PlacementUnit:
    shape = cfg.resources.role(roles[0])
    uses_gpu = device.kind == "cuda" and any(cfg.role_uses_accelerator(role) for role in roles)
    return PlacementUnit(
        roles, shape.num_nodes, shape.gpus_per_node, cfg.resources.cpus_per_actor, int(uses_gpu), shape.num_nodes > 1
    )


def plan_rollout(cfg: Config, device: DeviceProfile) -> PlacementUnit:
    """The rollout engines: one bundle per engine, its tensor-parallel GPUs kept together."""
    gpus = cfg.rollout.tensor_parallel_size if device.kind == "cuda" else 0
    return PlacementUnit(("rollout",), cfg.rollout.num_engines, 1, cfg.resources.cpus_per_actor, gpus, False)


def cpus_needed(units: Iterable[PlacementUnit]) -> int:
    """Logical CPUs a local cluster must declare to hold ``units``."""
    return math.ceil(sum(unit.total()["CPU"] for unit in units))


def _describe(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{key} {value:g}" for key, value in sorted(resources.items()))


def check_fits(units: list[PlacementUnit], nodes: list[Mapping[str, float]]) -> None:
    """Fail fast, naming what is missing, when ``units`` cannot fit ``nodes`` (total resources per node)."""
    problems = []
    for unit in units:
        bundle = unit.bundle()
        fitting = sum(all(node.get(key, 0.0) >= need for key, need in bundle.items()) for node in nodes)
        distinct_nodes = unit.num_bundles if unit.spread else 1
        if fitting < distinct_nodes:
            problems.append(
                f"{unit.name} needs {distinct_nodes} node(s) with {_describe(bundle)} each; "
                f"{fitting} of the cluster's {len(nodes)} node(s) have that"
            )
    needed: dict[str, float] = {}
    for unit in units:
        for key, value in unit.total().items():
            needed[key] = needed.get(key, 0.0) + value
    available = {key: sum(node.get(key, 0.0) for node in nodes) for key in needed}
    short = {key: value for key, value in needed.items() if value > available[key] + 1e-9}
    if short:
        breakdown = "; ".join(f"{unit.name}: {_describe(unit.total())}" for unit in units)
        problems.append(
            f"the roles need {_describe(needed)} in all ({breakdown}) but the cluster has {_describe(available)}"
        )
    if problems:
        raise PlacementError("the placement does not fit the Ray cluster:\n  " + "\n  ".join(problems))


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
