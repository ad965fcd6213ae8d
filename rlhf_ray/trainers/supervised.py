"""The loop of the stages that train one model on a fixed dataset (SFT, reward model, DPO).

One step: draw a global batch (seeded, resumable) -> one optimizer step on the role group -> log;
evaluate on the held-out set before training (step 0), every ``eval_interval`` steps and at the end; checkpoint every
``checkpoint.interval`` steps and at the end; export the model as a plain HF folder. What differs
between the stages (data, worker, evaluation, what is saved with the export) is a ``Stage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from rlhf_ray.config import Config
from rlhf_ray.config.placement_plan import plan_stage
from rlhf_ray.config.schema import SupervisedStageConfig
from rlhf_ray.data.records import LoadedRows
from rlhf_ray.data.sampler import PromptSampler
from rlhf_ray.distributed.cluster import connect
from rlhf_ray.distributed.placement import release, reserve
from rlhf_ray.distributed.role_group import RoleGroup, freeze_heaps, share_cores
from rlhf_ray.models import load_tokenizer
from rlhf_ray.models.checks import ModelFolder, check_model_folders
from rlhf_ray.tracking import PhaseTimer, Tracker, default_run_name
from rlhf_ray.trainers.checkpoint import Checkpointer
from rlhf_ray.trainers.intervals import every

Item = TypeVar("Item")


@dataclass
class StageResult:
    steps: int
    export_dir: Path | None
    metrics_file: Path
    final_metrics: dict[str, float]
    """The metrics of the last step, evaluation included."""
    wandb_dir: str | None


class Stage(Generic[Item]):
    """What one supervised stage trains, on what, and how it is judged."""

    name: str
    """The config section (``sft``, ``reward_model``, ``dpo``)."""
    job: str
    """Short name for runs and progress (``sft``, ``rm``, ``dpo``)."""
    role: str
    """Whose ranks (``resources.<role>``) train the model."""
    worker_cls: type

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.section: SupervisedStageConfig = getattr(cfg, self.name)

    def init_folder(self) -> ModelFolder:
        """The model folder training starts from, and the config field that chose it."""
        raise NotImplementedError

    def load_data(self, tokenizer) -> tuple[LoadedRows[Item], LoadedRows[Item] | None]:
        """Training and held-out rows, validated (before any actor starts)."""
        raise NotImplementedError

    def batch(self, items: list[Item], pad_token_id: int) -> Any:
        raise NotImplementedError

    def evaluate(self, group: RoleGroup, batch: Any) -> dict[str, float]:
        """``eval/*`` metrics of the held-out batch."""
        raise NotImplementedError

    def after_export(self, group: RoleGroup, train_items: list[Item], pad_token_id: int, export_dir: Path) -> None:
        """Anything the exported folder carries besides the model (``train_items``: the training rows)."""


def run_stage(stage: Stage) -> StageResult:
    """Train as ``stage`` says, resuming from its checkpoints when ``checkpoint.resume`` finds one."""
    cfg, section = stage.cfg, stage.section
    init = stage.init_folder()
    check_model_folders([init], tokenizer=init)
    init_path = init.path
    tokenizer = load_tokenizer(init_path, "right", role=stage.name)
    train_rows, eval_rows = stage.load_data(tokenizer)
    batch_size = section.train.global_batch_size
    sampler = PromptSampler(len(train_rows), batch_size, cfg.seed, True, f"{stage.name}.train.global_batch_size")
    total_steps = section.max_steps or section.epochs * sampler.batches_per_epoch
    eval_batch = stage.batch(eval_rows.items, tokenizer.pad_token_id) if eval_rows is not None else None
    checkpoints = Checkpointer(section.checkpoint, f"{stage.name}.checkpoint")
    resume_from = checkpoints.resume_point()

    device = connect(cfg)
    cfg = device.resolved(cfg)
    slots = reserve([plan_stage(cfg, device, stage.role)], cfg.resources.placement_timeout_s)
    group = RoleGroup(stage.role, stage.worker_cls, slots[stage.role], cfg, device)
    try:
        share_cores([group])  # the stage's one group has the cores to itself
        group.setup(init_path, total_steps).result()
        state = {"step": 0, "sampler": sampler.state_dict(), "run_name": default_run_name(cfg, stage.job)}
        if resume_from is not None:
            state = checkpoints.load(resume_from, {stage.role: group})
            sampler.load_state_dict(state["sampler"])
        tracker = Tracker(cfg, state["run_name"], total_steps, resume_id=state.get("wandb_id"), job_type=stage.job)
        state["wandb_id"] = tracker.run_id
        if eval_batch is not None and state["step"] == 0:
            tracker.log(0, stage.evaluate(group, eval_batch))  # the starting model, to compare against
        metrics: dict[str, float] = {}
        first_step = state["step"] + 1
        for step in range(first_step, total_steps + 1):
            timer = PhaseTimer()
            last = step == total_steps
            with timer.phase("step"):
                batch = stage.batch([train_rows.items[i] for i in sampler.next_batch()], tokenizer.pad_token_id)
                with timer.phase("update"):
                    metrics = {f"train/{k}": v for k, v in group.update(batch).result().items()}
                if eval_batch is not None and (every(step, section.eval_interval) or last):
                    with timer.phase("evaluate"):
                        metrics.update(stage.evaluate(group, eval_batch))
                state.update(step=step, sampler=sampler.state_dict())
                if every(step, section.checkpoint.interval) or last:
                    with timer.phase("checkpoint"):
                        checkpoints.save(step, state, {stage.role: group})
            if step == first_step:
                freeze_heaps([group])  # once the first step has compiled what it compiles
            metrics["data/skipped_rows"] = float(sum(train_rows.skipped.values()))
            metrics.update({f"data/excluded_rows/{why}": float(n) for why, n in train_rows.excluded.items()})
            tracker.log(step, metrics | timer.metrics())
        export_dir = None
        if section.checkpoint.export_dir is not None:
            export_dir = Path(section.checkpoint.export_dir)
            group.export_hf(str(export_dir), init_path).result()
            stage.after_export(group, train_rows.items, tokenizer.pad_token_id, export_dir)
        tracker.finish()
        return StageResult(total_steps, export_dir, Path(tracker.metrics_file.name), metrics, tracker.run_dir)
    finally:
        group.shutdown()
        release(slots)
