"""Dashboards (W&B online/offline/disabled, TensorBoard), the console, and per-phase timers."""

from rlhf_ray.tracking.timers import PhaseTimer
from rlhf_ray.tracking.tracker import Tracker, default_run_name

__all__ = ["PhaseTimer", "Tracker", "default_run_name"]
