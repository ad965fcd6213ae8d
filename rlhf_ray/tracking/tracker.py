"""Where metrics go: W&B (online, offline or disabled), optionally TensorBoard, a JSONL file, and a
console progress line with step, reward, KL per token and ETA (and, with ``logging.verbose``, a line of each
step's phase timings).

The W&B key is read by wandb from the environment; nothing here writes it anywhere. The run's
config is the resolved experiment config, which holds no secret.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from rlhf_ray.config import Config

# What the progress line shows of each step's metrics, when present (PPO, SFT, reward model).
_SUMMARY = (
    ("reward", "rollout/reward_mean"),
    ("gold", "rollout/gold_reward"),
    ("kl/token", "train/kl_per_token"),
    ("loss", "train/loss"),
    ("eval loss", "eval/loss"),
    ("eval acc", "eval/accuracy"),
)


def _phase_timings(step: int, metrics: dict[str, float]) -> str:
    """``step N phases (s): generate 1.20  reward 0.05 ...``: the ``timing/*`` seconds (rates left out)."""
    phases = "  ".join(
        f"{name.removeprefix('timing/')} {value:.2f}"
        for name, value in metrics.items()
        if name.startswith("timing/") and not name.endswith("_per_s")
    )
    return f"step {step} phases (s): {phases}"


def default_run_name(cfg: Config, job: str | None = None) -> str:
    """``logging.wandb.run_name``, or the experiment's name with a timestamp; with the job appended."""
    name = cfg.logging.wandb.run_name or f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"
    return f"{name}-{job}" if job else name


class Tracker:
    def __init__(
        self, cfg: Config, run_name: str, total_steps: int, resume_id: str | None = None, job_type: str = "ppo"
    ):
        self.cfg = cfg
        self.dir = Path(cfg.logging.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_file = (self.dir / f"{run_name}.metrics.jsonl").open("a")
        wandb_cfg = cfg.logging.wandb
        import wandb

        self.wandb = wandb.init(
            mode=wandb_cfg.mode,
            project=wandb_cfg.project,
            entity=wandb_cfg.entity,
            name=run_name,
            group=wandb_cfg.group,
            job_type=job_type,
            tags=wandb_cfg.tags,
            dir=str(self.dir),
            config=cfg.model_dump(mode="json"),
            id=resume_id,
            resume="allow" if resume_id else None,
            # Its banner lines only with logging.verbose: the run's folder is in the end summary.
            settings=wandb.Settings(silent=not cfg.logging.verbose),
        )
        self.tensorboard = None
        if cfg.logging.tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(cfg.logging.tensorboard_dir)
        self.progress = Progress(
            TextColumn("[bold]step {task.completed}/{task.total}"),
            BarColumn(),
            TextColumn("{task.fields[summary]}"),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task(job_type, total=total_steps, summary="")
        self.progress.start()
        self.logged_up_to = 0
        self.replayed_up_to = 0
        """Steps up to this one are logged again after a recovery: to the metrics file (the last record of
        a step wins), not to W&B or TensorBoard, which keep their first record."""
        self.recoveries: list[list] = []

    @property
    def run_id(self) -> str | None:
        return self.wandb.id if self.wandb is not None else None

    @property
    def run_dir(self) -> str | None:
        return getattr(self.wandb, "dir", None)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.metrics_file.write(json.dumps({"step": step, **metrics}) + "\n")
        self.metrics_file.flush()
        self.logged_up_to = max(self.logged_up_to, step)
        if step > self.replayed_up_to:
            self.wandb.log(metrics, step=step)
            if self.tensorboard is not None:
                for name, value in metrics.items():
                    self.tensorboard.add_scalar(name, value, step)
        summary = "  ".join(f"{label} {metrics[key]:.3f}" for label, key in _SUMMARY if key in metrics)
        self.progress.update(self.task, completed=step, summary=summary)
        if self.cfg.logging.verbose:
            self.progress.console.print(_phase_timings(step, metrics), highlight=False, soft_wrap=True)

    def log_samples(self, step: int, rows: Sequence[tuple[str, str, float]]) -> None:
        if step <= self.replayed_up_to:
            return
        import wandb

        table = wandb.Table(columns=["prompt", "response", "reward"], data=[list(row) for row in rows])
        self.wandb.log({"samples": table}, step=step)

    def recovery(self, message: str, details: dict[str, str | int], resumes_after: int) -> None:
        """A recovery: a line on the console and a row of W&B's ``recovery/events`` table; the steps after
        ``resumes_after`` up to the last one logged will be replayed."""
        self.progress.console.print(message, style="bold yellow", highlight=False, soft_wrap=True)
        self.replayed_up_to = max(self.replayed_up_to, self.logged_up_to)
        self.recoveries.append([self.logged_up_to, resumes_after, *details.values()])
        import wandb

        columns = ["failed_after_step", "resumed_after_step", *details]
        self.wandb.log({"recovery/events": wandb.Table(columns=columns, data=self.recoveries)}, step=self.logged_up_to)

    def finish(self) -> None:
        self.progress.stop()
        self.metrics_file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.wandb.finish()
