"""The stages of RLHF in a row, each reading the previous stage's exported model: SFT -> reward model ->
PPO (``pipeline.method: ppo``; SFT -> PPO when the reward is functions or served, not a reward model), or
SFT -> DPO on the same preference pairs (``pipeline.method: dpo``). A
stage whose exported model already exists is skipped unless forced; each stage logs to its own W&B run,
all of them in one W&B group.

The PPO stage's policy (and so its reference) is the SFT model; its reward model is the trained
reward model, which also initialises the critic when ``models.critic.path`` is unset (InstructGPT).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from rlhf_ray.config import Config
from rlhf_ray.config.checks import pipeline_stages
from rlhf_ray.tracking import default_run_name
from rlhf_ray.trainers.ppo import TrainResult, train
from rlhf_ray.trainers.stages import DPOStage, RewardModelStage, SFTStage
from rlhf_ray.trainers.supervised import Stage, StageResult, run_stage

log = logging.getLogger(__name__)


def pipeline_jobs(cfg: Config) -> tuple[str, ...]:
    """The stages ``rlhf-ray pipeline`` runs, in order, by the names ``--force`` takes."""
    jobs = {"sft": "sft", "reward_model": "rm", "dpo": "dpo"}
    stages = tuple(jobs[name] for name in pipeline_stages(cfg))
    return stages if cfg.pipeline.method == "dpo" else (*stages, "ppo")


@dataclass
class PipelineResult:
    sft: StageResult | None
    """None when the stage was skipped (its model existed) or is not part of ``pipeline.method``."""
    reward_model: StageResult | None
    """None also when PPO's reward is not a reward model (no such stage)."""
    ppo: TrainResult | None
    dpo: StageResult | None
    sft_model: Path
    reward_model_dir: Path | None
    """None with ``pipeline.method: dpo`` or a reward that is not a reward model."""


def run_pipeline(cfg: Config, force: Collection[str] = ()) -> PipelineResult:
    """Run the stages not yet done (and those in ``force``: ``sft``, ``rm``, ``ppo``, ``dpo``) as ``cfg`` says."""
    name = default_run_name(cfg)
    cfg = _with(cfg, logging={"wandb": {"run_name": name, "group": cfg.logging.wandb.group or name}})
    sft = _run_unless_done(SFTStage(_fresh(cfg, "sft", "sft" in force)), "sft" in force)
    sft_model = Path(cfg.sft.checkpoint.export_dir)
    if cfg.pipeline.method == "dpo":
        dpo = _run_unless_done(DPOStage(_fresh(cfg, "dpo", "dpo" in force)), "dpo" in force)
        return PipelineResult(sft, None, None, dpo, sft_model, None)
    reward_model, rm_model, models = None, None, {"policy": {"path": str(sft_model)}}
    if "reward_model" in pipeline_stages(cfg):
        reward_model = _run_unless_done(RewardModelStage(_fresh(cfg, "reward_model", "rm" in force)), "rm" in force)
        rm_model = Path(cfg.reward_model.checkpoint.export_dir)
        models |= {"reward": {"path": str(rm_model)}, "critic": {"path": cfg.models.critic.path or str(rm_model)}}
    ppo_cfg = _with(cfg, models=models)
    ppo = None
    if "ppo" in force or not _exported(cfg.checkpoint.export_dir):
        ppo = train(_fresh(ppo_cfg, "", "ppo" in force))
    else:
        log.warning("ppo: skipped, its policy exists at %s (force it with --force ppo)", cfg.checkpoint.export_dir)
    return PipelineResult(sft, reward_model, ppo, None, sft_model, rm_model)


def _run_unless_done(stage: Stage, forced: bool) -> StageResult | None:
    export_dir = stage.section.checkpoint.export_dir
    if not forced and _exported(export_dir):
        log.warning("%s: skipped, its model exists at %s (force it with --force %s)", stage.job, export_dir, stage.job)
        return None
    return run_stage(stage)


def _exported(folder: str | None) -> bool:
    return folder is not None and (Path(folder) / "config.json").is_file()


def _fresh(cfg: Config, section: str, forced: bool) -> Config:
    """A forced stage starts afresh instead of resuming from its previous run's checkpoints."""
    if not forced:
        return cfg
    checkpoint = {"checkpoint": {"resume": "never"}}
    return _with(cfg, **({section: checkpoint} if section else checkpoint))


def _with(cfg: Config, **changes) -> Config:
    """``cfg`` with nested fields replaced, validated again."""
    merged = _merge(cfg.model_dump(), changes)
    return Config.model_validate(merged)


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) else value
    return out
