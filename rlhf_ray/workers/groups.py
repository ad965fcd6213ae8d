"""Start every role the config asks for as a role group, placed and set up, as the role table says."""

from __future__ import annotations

from dataclasses import dataclass

from ray.exceptions import RayActorError

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import plan_placement, rollout_units
from rlhf_ray.config.plugins import import_object
from rlhf_ray.config.schema.roles import ROLE_SPECS, RoleSpec
from rlhf_ray.distributed.failures import RestartBudget, RoleFailure, get_all, identify
from rlhf_ray.distributed.placement import RoleSlots, release, reserve
from rlhf_ray.distributed.role_group import RoleGroup, freeze_heaps
from rlhf_ray.distributed.role_host import RoleHosts
from rlhf_ray.models.paths import ModelPaths
from rlhf_ray.workers.rollout_group import RolloutGroup


@dataclass
class RoleGroups:
    groups: dict[str, RoleGroup]
    """Every active role's group, by name."""
    rollout: RolloutGroup
    slots: dict[str, RoleSlots]

    @property
    def policy(self) -> RoleGroup:
        return self.groups["policy"]

    @property
    def reward(self) -> RoleGroup:
        return self.groups["reward"]

    @property
    def critic(self) -> RoleGroup | None:
        return self.groups.get("critic")

    @property
    def reference(self) -> RoleGroup | None:
        return self.groups.get("reference")

    def trained(self) -> dict[str, RoleGroup]:
        """The groups a checkpoint saves: those of the trained roles."""
        return {name: group for name, group in self.groups.items() if ROLE_SPECS[name].trained}

    def freeze_heaps(self) -> None:
        """Once the first step has run (and compiled what it compiles): the objects every role process
        holds out of its garbage collections' walks (``RoleWorker.freeze_heap``)."""
        freeze_heaps(self.groups.values())

    def failure(self, error: RayActorError, phase: str) -> RoleFailure | None:
        """Which role rank or engine ``error`` says died, during the driver's ``phase``."""
        processes = {key: p for group in self.groups.values() for key, p in group.processes.items()}
        return identify(error, processes | self.rollout.processes, phase)

    def shutdown(self, graceful: bool = True) -> None:
        """End every actor (``graceful``: as ``RoleGroup.shutdown``) and release the placement; never
        raises, whatever died before."""
        self.rollout.shutdown()
        for group in self.groups.values():
            group.shutdown(graceful)
        release(self.slots)


def start_role_groups(
    cfg: Config,
    device: DeviceProfile,
    paths: ModelPaths,
    iterations: int,
    restart_budget: RestartBudget | None = None,
) -> RoleGroups:
    """Reserve the placement (failing fast when it cannot fit), start the role actors and the rollout
    engines, load the models. ``iterations`` PPO iterations size the learning-rate schedules; the
    engines restart within ``restart_budget`` (the run's; by default one of their own)."""
    roles = cfg.active_roles()
    units = [*plan_placement(cfg, device, roles), *rollout_units(cfg, device)]
    slots = reserve(units, cfg.resources.placement_timeout_s)
    workers = {role: import_object(ROLE_SPECS[role].worker(cfg)) for role in roles}
    hosts = shared_hosts(cfg, device, workers, slots)
    groups = {role: RoleGroup(role, workers[role], slots[role], cfg, device, hosts.get(role)) for role in roles}
    setups = [
        ref
        for role, group in groups.items()
        for ref in group.setup(*setup_arguments(ROLE_SPECS[role], cfg, paths, iterations)).refs
    ]
    rollout = RolloutGroup(cfg, device, slots.get("rollout"), paths.policy, groups["policy"], restart_budget)
    roles = RoleGroups(groups=groups, rollout=rollout, slots=slots)
    try:
        get_all(setups + rollout.ready())
    except RayActorError as error:
        roles.shutdown(graceful=False)
        failure = roles.failure(error, "start-up")
        if failure is None:
            raise
        raise failure from error
    rollout.describe()
    return roles


def shared_hosts(
    cfg: Config, device: DeviceProfile, workers: dict[str, type], slots: dict[str, RoleSlots]
) -> dict[str, RoleHosts]:
    """With ``resources.shared_processes``, the processes each colocation group's roles share, by role."""
    if not cfg.resources.shared_processes:
        return {}
    hosts = {}
    for group in cfg.resources.colocate:
        members = {role: workers[role] for role in group if role in workers}
        if len(members) > 1:
            shared = RoleHosts(members, slots, cfg, device)
            hosts.update(dict.fromkeys(members, shared))
    return hosts


def setup_arguments(role: RoleSpec, cfg: Config, paths: ModelPaths, iterations: int) -> tuple:
    """A rank's ``setup``: its model folder, and for a trained role the optimizer steps of the run."""
    folder = paths.folders[role.name]
    if role.trained:
        return folder, cfg.optimizer_steps(role.name, iterations)
    return () if folder is None else (folder,)
