"""Start every role the config asks for as a role group, placed and set up."""

from __future__ import annotations

from dataclasses import dataclass

import ray

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import plan_placement, rollout_units
from rlhf_ray.distributed.placement import RoleSlots, release, reserve
from rlhf_ray.distributed.role_group import RoleGroup
from rlhf_ray.models.paths import ModelPaths
from rlhf_ray.workers.critic import CriticWorker
from rlhf_ray.workers.policy import PolicyWorker
from rlhf_ray.workers.reference import ReferenceWorker
from rlhf_ray.workers.reward import RewardFunctionWorker, RewardModelWorker
from rlhf_ray.workers.rollout_group import RolloutGroup


@dataclass
class RoleGroups:
    policy: RoleGroup
    reward: RoleGroup
    critic: RoleGroup | None
    reference: RoleGroup | None
    rollout: RolloutGroup
    slots: dict[str, RoleSlots]

    def trained(self) -> dict[str, RoleGroup]:
        """The groups a checkpoint saves: the policy, and the critic when there is one."""
        return {name: group for name, group in (("policy", self.policy), ("critic", self.critic)) if group is not None}

    def all(self) -> list[RoleGroup]:
        return [group for group in (self.policy, self.critic, self.reference, self.reward) if group is not None]

    def shutdown(self) -> None:
        self.rollout.shutdown()
        for group in self.all():
            group.shutdown()
        release(self.slots)


def start_role_groups(cfg: Config, device: DeviceProfile, paths: ModelPaths, iterations: int) -> RoleGroups:
    """Reserve the placement (failing fast when it cannot fit), start the role actors and the rollout
    engines, load the models. ``iterations`` PPO iterations size the learning-rate schedules."""
    roles = cfg.active_roles()
    units = [*plan_placement(cfg, device, roles), *rollout_units(cfg, device)]
    slots = reserve(units, cfg.resources.placement_timeout_s)
    reward_cls = RewardModelWorker if cfg.reward.source == "model" else RewardFunctionWorker
    classes = {"policy": PolicyWorker, "critic": CriticWorker, "reference": ReferenceWorker, "reward": reward_cls}
    groups = {role: RoleGroup(role, classes[role], slots[role], cfg, device) for role in roles}
    setup_args = {
        "policy": (paths.policy, cfg.optimizer_steps("policy", iterations)),
        "critic": (paths.critic, cfg.optimizer_steps("critic", iterations)),
        "reference": (paths.reference,),
        "reward": (paths.reward,) if cfg.reward.source == "model" else (),
    }
    setups = [ref for role, group in groups.items() for ref in group.setup(*setup_args[role]).refs]
    rollout = RolloutGroup(cfg, device, slots.get("rollout"), paths.policy, groups["policy"])
    ray.get(setups + rollout.ready())
    return RoleGroups(
        policy=groups["policy"],
        reward=groups["reward"],
        critic=groups.get("critic"),
        reference=groups.get("reference"),
        rollout=rollout,
        slots=slots,
    )
