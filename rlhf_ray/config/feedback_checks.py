"""Checks of the labelling app's settings (``feedback``), run before ``rlhf-ray label serve`` starts anything."""

from __future__ import annotations

from rlhf_ray.config.issues import ConfigIssue
from rlhf_ray.config.schema import Config


def check_feedback(cfg: Config) -> list[ConfigIssue]:
    issues = []
    if cfg.rollout.temperature == 0:
        issues.append(
            ConfigIssue(
                "rollout.temperature",
                f"is 0: greedy decoding gives the {cfg.feedback.responses_per_prompt} responses of an item "
                "(feedback.responses_per_prompt) the same text; sample them at a temperature above 0",
            )
        )
    if cfg.feedback.model_path is None and cfg.sft.checkpoint.export_dir is None:
        issues.append(
            ConfigIssue("feedback.model_path", "is required when there is no SFT export (sft.checkpoint.export_dir)")
        )
    return issues
