"""Checks that the roles and engines fit the cluster: colocation groups, nodes, GPUs or logical CPUs,
from the same placement plan Ray's placement follows."""

from __future__ import annotations

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.issues import ConfigIssue
from rlhf_ray.config.placement_plan import PlacementUnit, plan_placement, rollout_units
from rlhf_ray.config.schema import Config


def check_colocation(cfg: Config) -> list[ConfigIssue]:
    issues = []
    seen: set[str] = set()
    for i, group in enumerate(cfg.resources.colocate):
        path = f"resources.colocate.{i}"
        if len(group) < 2:
            issues.append(ConfigIssue(path, f"a colocation group needs at least two roles, got {group}"))
        repeated = seen.intersection(group)
        if repeated or len(set(group)) < len(group):
            issues.append(ConfigIssue(path, f"a role may be in only one colocation group: {sorted(repeated or group)}"))
        seen.update(group)
        shapes = {role: cfg.resources.role(role) for role in group}
        if len({(r.num_nodes, r.gpus_per_node) for r in shapes.values()}) > 1:
            described = ", ".join(f"{role}: {r.num_nodes}x{r.gpus_per_node}" for role, r in shapes.items())
            issues.append(ConfigIssue(path, f"colocated roles need the same nodes x gpus_per_node ({described})"))
    if cfg.resources.shared_processes and not cfg.resources.colocate:
        issues.append(
            ConfigIssue(
                "resources.shared_processes",
                "puts each colocation group's roles in one process, but resources.colocate names no group",
            )
        )
    return issues


def _units(cfg: Config, kind: str) -> list[PlacementUnit]:
    """The placement plan's units, as they would be on a cluster of ``kind`` devices."""
    device = DeviceProfile(kind)
    return [*plan_placement(cfg, device, cfg.active_roles()), *rollout_units(cfg, device)]


def _label(cfg: Config, unit: PlacementUnit) -> str:
    if unit.roles == ("rollout",):
        return f"rollout ({cfg.rollout.num_engines} engines x tp {cfg.rollout.tensor_parallel_size})"
    return unit.name


def check_resources_fit(cfg: Config) -> list[ConfigIssue]:
    res = cfg.resources
    issues = []
    for role in cfg.active_roles():
        shape = res.role(role)
        if shape.num_nodes > res.num_nodes:
            issues.append(
                ConfigIssue(
                    f"resources.{role}.num_nodes", f"{shape.num_nodes} exceeds resources.num_nodes ({res.num_nodes})"
                )
            )
    engine_nodes = cfg.rollout.num_nodes
    if engine_nodes is not None and engine_nodes > res.num_nodes:
        issues.append(ConfigIssue("rollout.num_nodes", f"{engine_nodes} exceeds resources.num_nodes ({res.num_nodes})"))
    if engine_nodes is not None and cfg.rollout.num_engines % engine_nodes:
        issues.append(
            ConfigIssue(
                "rollout.num_nodes",
                f"{engine_nodes} does not divide rollout.num_engines ({cfg.rollout.num_engines}): "
                "every node holds the same number of engines",
            )
        )
    if res.device == "cpu":
        if res.num_cpus is None:
            return issues
        units = _units(cfg, "cpu")
        actors = sum(unit.world_size for unit in units)
        needed = sum(unit.total()["CPU"] for unit in units)
        if needed > res.num_cpus:
            issues.append(
                ConfigIssue(
                    "resources.num_cpus",
                    f"{res.num_cpus} logical CPUs, but the roles need {needed:g} "
                    f"({actors} actors x resources.cpus_per_actor {res.cpus_per_actor:g})",
                )
            )
        return issues
    for role in cfg.active_roles():
        shape = res.role(role)
        if shape.gpus_per_node > res.gpus_per_node:
            issues.append(
                ConfigIssue(
                    f"resources.{role}.gpus_per_node",
                    f"{shape.gpus_per_node} exceeds resources.gpus_per_node ({res.gpus_per_node})",
                )
            )
    if cfg.rollout.tensor_parallel_size > res.gpus_per_node:
        issues.append(
            ConfigIssue(
                "rollout.tensor_parallel_size",
                f"{cfg.rollout.tensor_parallel_size} exceeds resources.gpus_per_node ({res.gpus_per_node}): "
                "an engine is kept within one node",
            )
        )
    gpus = {_label(cfg, unit): int(unit.total().get("GPU", 0)) for unit in _units(cfg, "cuda")}
    needed = sum(gpus.values())
    available = res.num_nodes * res.gpus_per_node
    if needed > available:
        breakdown = ", ".join(f"{label}: {count}" for label, count in gpus.items() if count)
        issues.append(
            ConfigIssue(
                "resources",
                f"the roles need {needed} GPUs ({breakdown}) but the cluster has {available} "
                f"(num_nodes {res.num_nodes} x gpus_per_node {res.gpus_per_node})",
            )
        )
    return issues
