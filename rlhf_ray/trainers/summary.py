"""What a run says of itself on the console before its progress bar: the experiment in one line, and
one line per role as it starts (ranks, device, how it computes)."""

from __future__ import annotations

from rlhf_ray.config import Config
from rlhf_ray.config.schema.roles import ROLE_SPECS
from rlhf_ray.workers.groups import RoleGroups


def experiment_line(cfg: Config, total_steps: int) -> str:
    algorithm, kl = cfg.algorithm, cfg.algorithm.kl
    leash = f"KL {kl.estimator} x {kl.coef:g} in the {kl.placement}" if kl.coef else "no KL penalty"
    return (
        f"{cfg.name}: PPO ({algorithm.advantage_estimator}, {leash}), {total_steps} steps of "
        f"{cfg.data.prompts_per_step} prompts x {cfg.rollout.samples_per_prompt} samples; "
        f"checkpoints in {cfg.checkpoint.dir}, logs in {cfg.logging.dir}"
    )


def role_lines(cfg: Config, roles: RoleGroups, device: str) -> list[str]:
    lines = []
    for name, group in roles.groups.items():
        ranks = f"{group.world_size} rank{'s' if group.world_size > 1 else ''}"
        process = next(iter(group.processes.values())).role  # a shared process is named by its roles
        shared = "" if process == name else f" (one process: {process})"
        lines.append(f"  {name:<10} {ranks:<8} on {device}: {_computes(cfg, name)}{shared}")
    rollout = cfg.rollout
    engines = f"{len(roles.rollout.engines)} engine{'s' if len(roles.rollout.engines) > 1 else ''}"
    ahead = f", {rollout.async_steps} step(s) ahead" if rollout.async_steps else ""
    lines.append(
        f"  {'rollout':<10} {engines:<8} on {device}: {rollout.engine} {rollout.dtype}, weights by "
        f"{rollout.weight_sync}{ahead}"
    )
    return lines


def _computes(cfg: Config, role: str) -> str:
    if role == "reward" and cfg.reward.source == "http":
        return f"client of the reward server {cfg.reward.server.url}"
    if role == "reward" and cfg.reward.source == "function":
        functions = cfg.reward.weighted_functions()
        if len(functions) == 1:
            return f"function {functions[0].function}"
        return "functions " + " + ".join(f"{f.weight:g} x {f.function}" for f in functions)
    if ROLE_SPECS[role].trained:
        train = getattr(cfg.train, role)
        return f"DeepSpeed ZeRO-{train.zero_stage} {train.precision}"
    return f"frozen {getattr(cfg.models, role).dtype}"
