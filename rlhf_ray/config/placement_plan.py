"""The placement plan: which sets of devices (units) every role and the rollout engines need, decided
once from the config and checked against the cluster's nodes. Pure: no Ray, so the config checks use
it too, before anything starts.

A *unit* is a set of devices some roles share: one role on its own, or a colocation group. It has
``num_bundles`` x ``ranks_per_bundle`` rank slots. A role unit has one bundle per node, spread over
distinct nodes, so its ranks land on exactly the nodes the config asks for; roles colocated in a
unit split each slot's GPU and CPUs evenly. The rollout unit has one bundle per engine, packed, or,
when ``rollout.num_nodes`` says how many nodes the engines spread over, one bundle per node like a role.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.schema import Config, RolloutConfig


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
    uses_gpu = device.kind == "cuda" and any(cfg.role_uses_accelerator(role) for role in roles)
    return _role_unit(cfg, roles, uses_gpu)


def _role_unit(cfg: Config, roles: tuple[str, ...], uses_gpu: bool) -> PlacementUnit:
    shape = cfg.resources.role(roles[0])
    return PlacementUnit(
        roles, shape.num_nodes, shape.gpus_per_node, cfg.resources.cpus_per_actor, int(uses_gpu), shape.num_nodes > 1
    )


def plan_stage(cfg: Config, device: DeviceProfile, role: str) -> PlacementUnit:
    """A stage training one model (SFT, reward model) on the ranks of ``role``, each with a GPU on GPUs."""
    return _role_unit(cfg, (role,), device.kind == "cuda")


def plan_rollout(cfg: Config, device: DeviceProfile) -> PlacementUnit:
    """The rollout engines, each engine's tensor-parallel GPUs kept within one bundle: one bundle per
    engine, packed, or, with ``rollout.num_nodes``, one bundle per node holding its share of engines."""
    rollout = cfg.rollout
    gpus = rollout.tensor_parallel_size if device.kind == "cuda" else 0
    # A tensor-parallel engine runs a process per shard: CPUs for each of them.
    cpus = cfg.resources.cpus_per_actor * rollout.tensor_parallel_size
    if rollout.num_nodes is None:
        return PlacementUnit(("rollout",), rollout.num_engines, 1, cpus, gpus, False)
    return PlacementUnit(("rollout",), rollout.num_nodes, engines_per_node(rollout), cpus, gpus, rollout.num_nodes > 1)


def engines_per_node(rollout: RolloutConfig) -> int:
    """The most engines one node holds (all of them when ``rollout.num_nodes`` is None)."""
    return -(-rollout.num_engines // (rollout.num_nodes or 1))


def rollout_units(cfg: Config, device: DeviceProfile) -> list[PlacementUnit]:
    """The engines' own unit, or none when they live inside the policy's actors (``in_process``)."""
    return [] if cfg.rollout.weight_sync == "in_process" else [plan_rollout(cfg, device)]


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
