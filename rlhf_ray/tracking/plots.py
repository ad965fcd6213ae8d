"""Plots of metrics files (``<run>.metrics.jsonl``) without W&B: rewards, KL per token, response length,
losses, accuracy and where a step's time goes, several runs overlaid, written to a PNG."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Each line panel's title and the metrics it draws, those a run logged. A panel no run logged is left out.
LINE_PANELS = (
    ("reward", ("rollout/reward_mean", "rollout/gold_reward", "eval/reward_mean", "eval/gold_reward")),
    ("KL per token", ("train/kl_per_token",)),
    ("response length (tokens)", ("rollout/response_length",)),
    ("loss", ("train/loss", "eval/loss")),
    ("accuracy", ("train/accuracy", "eval/accuracy")),
)
# The phases a step is made of, in order (PPO's, then the SFT and reward-model stages' own). Every other
# ``timing/*`` is nested in one of them (reward, logprobs, reference and values in forwards; policy_update
# and critic_update in update), outside the step (recovery) or a rate (``*_per_s``).
STEP_PHASES = (
    "generate",
    "forwards",
    "advantages",
    "update",
    "generate_ahead",
    "weight_sync",
    "evaluate",
    "checkpoint",
)
OTHER = "other"
"""What a step spent outside its phases: drawing prompts, the driver's own work."""

PANEL_WIDTH, PANEL_HEIGHT, COLUMNS, DPI = 6.0, 3.5, 2, 80
"""Inches per panel, panels per row, pixels per inch."""
LEARNED_REWARD, GOLD_REWARD = "rollout/reward_mean", "rollout/gold_reward"
"""What PPO optimises (the reward model's score) and what it stands for (the hidden gold reward)."""
LINE_STYLES = ("-", "--", ":", "-.")


class PlotError(ValueError):
    """A metrics file that cannot be plotted (missing, not JSONL metrics records, without steps), or nothing to plot."""


@dataclass
class Run:
    label: str
    steps: dict[int, dict[str, float]]
    """Each step's metrics, in step order."""

    def series(self, metric: str) -> tuple[list[int], list[float]]:
        """The steps that logged ``metric``, and its values."""
        logged = [(step, record[metric]) for step, record in self.steps.items() if metric in record]
        return [step for step, _ in logged], [value for _, value in logged]

    def mean_phase_seconds(self) -> dict[str, float]:
        """Seconds per step in each phase, mean over the timed steps, ``other`` last (none without timing)."""
        timed = [record for record in self.steps.values() if "timing/step" in record]
        if not timed:
            return {}
        phases = {
            phase: sum(record.get(f"timing/{phase}", 0.0) for record in timed) / len(timed) for phase in STEP_PHASES
        }
        step = sum(record["timing/step"] for record in timed) / len(timed)
        logged = {phase: seconds for phase, seconds in phases.items() if seconds > 0}
        return logged | {OTHER: max(step - sum(logged.values()), 0.0)}


def read_metrics(path: Path) -> dict[int, dict[str, float]]:
    """The metrics of each step in ``path``, in step order; a step logged twice (replayed after a recovery)
    has its last record."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise PlotError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PlotError(f"{path}: not a text file") from None
    steps: dict[int, dict[str, float]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlotError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise PlotError(f"{path}:{number}: not a metrics record (a JSON object with an integer 'step')")
        step = record.pop("step")
        steps[step] = record
    if not steps:
        raise PlotError(f"{path}: no steps logged")
    return dict(sorted(steps.items()))


def run_label(path: Path) -> str:
    """The run's name: ``x`` for ``x.metrics.jsonl``."""
    return path.name.removesuffix(".jsonl").removesuffix(".metrics")


def plot_runs(runs: Sequence[Run], output: Path) -> None:
    """``runs``' figure written to ``output`` (a PNG)."""
    figure = metrics_figure(runs)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)


def plot_gold_vs_learned(metrics_file: Path) -> Path:
    """A PPO run's learned and gold reward per step, written next to ``metrics_file`` as
    ``<run>.gold_vs_learned.png``; its path."""
    run = Run(run_label(metrics_file), read_metrics(metrics_file))
    output = metrics_file.with_name(f"{run.label}.gold_vs_learned.png")
    gold_vs_learned_figure(run).savefig(output)
    return output


def gold_vs_learned_figure(run: Run) -> Figure:
    """The learned reward and the gold reward over the steps, the gap between them shaded: a learned reward
    that climbs while the gold one does not is the policy exploiting the reward model (over-optimisation)."""
    learned, gold = (
        dict(zip(*run.series(LEARNED_REWARD), strict=True)),
        dict(zip(*run.series(GOLD_REWARD), strict=True)),
    )
    if not learned or not gold:
        missing = LEARNED_REWARD if not learned else GOLD_REWARD
        raise PlotError(f"{run.label}: no {missing} logged; the gold-vs-learned plot needs both rewards")
    figure = Figure(figsize=(PANEL_WIDTH, PANEL_HEIGHT), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    ax.plot(list(learned), list(learned.values()), color="C0", label=f"learned: {LEARNED_REWARD}")
    ax.plot(list(gold), list(gold.values()), color="C1", label=f"gold: {GOLD_REWARD}")
    both = [step for step in learned if step in gold]
    ax.fill_between(both, [learned[s] for s in both], [gold[s] for s in both], color="C7", alpha=0.2, label="gap")
    ax.set_title(f"{run.label}: gold vs learned reward")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def metrics_figure(runs: Sequence[Run]) -> Figure:
    """One panel per group of metrics any run logged, runs overlaid, and one of each run's time per step."""
    panels = [(title, metrics) for title, metrics in LINE_PANELS if any(_logged(run, metrics) for run in runs)]
    splits = [run.mean_phase_seconds() for run in runs]
    timed = any(splits)
    count = len(panels) + timed
    if count == 0:
        raise PlotError("nothing to plot: no run logged rewards, KL, response length, losses, accuracy or timings")
    rows = math.ceil(count / COLUMNS)
    figure = Figure(figsize=(COLUMNS * PANEL_WIDTH, rows * PANEL_HEIGHT), dpi=DPI, layout="constrained")
    axes = list(figure.subplots(rows, COLUMNS, squeeze=False).flat)
    for ax, (title, metrics) in zip(axes, panels, strict=False):
        _draw_lines(ax, title, metrics, runs)
    if timed:
        _draw_time_split(axes[len(panels)], [run.label for run in runs], splits)
    for ax in axes[count:]:
        ax.remove()
    return figure


def _logged(run: Run, metrics: Sequence[str]) -> bool:
    return any(metric in record for record in run.steps.values() for metric in metrics)


def _draw_lines(ax: Axes, title: str, metrics: Sequence[str], runs: Sequence[Run]) -> None:
    """``metrics`` over the steps: a colour per run, a line style per metric; sparse ones (eval) marked."""
    for colour, run in enumerate(runs):
        for style, metric in zip(LINE_STYLES, metrics, strict=False):
            steps, values = run.series(metric)
            if not steps:
                continue
            label = metric if len(runs) == 1 else f"{run.label}: {metric}"
            marker = "o" if len(steps) < len(run.steps) else None
            ax.plot(steps, values, style, color=f"C{colour}", marker=marker, markersize=3, label=label)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def _draw_time_split(ax: Axes, labels: Sequence[str], splits: Sequence[dict[str, float]]) -> None:
    """A bar per run, stacked by phase: the mean seconds of a step in each, written on the wider ones."""
    phases = [phase for phase in (*STEP_PHASES, OTHER) if any(phase in split for split in splits)]
    rows = range(len(labels))
    totals = [sum(split.values()) for split in splits]
    left = [0.0] * len(labels)
    for colour, phase in enumerate(phases):
        seconds = [split.get(phase, 0.0) for split in splits]
        bars = ax.barh(rows, seconds, left=left, height=0.6, color=f"C{colour}", label=phase)
        ax.bar_label(bars, [f"{s:.2f}" if s > 0.12 * max(totals) else "" for s in seconds], label_type="center")
        left = [start + width for start, width in zip(left, seconds, strict=True)]
    ax.set_yticks(rows, [f"{label}\n{total:.2f} s" for label, total in zip(labels, totals, strict=True)])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("time per step, by phase (mean)")
    ax.legend(fontsize="small", ncols=min(len(phases), 4), loc="upper center", bbox_to_anchor=(0.5, -0.18))
