"""Checks of the RL objective: registered names (after the plugins import), what each estimator needs,
where the KL may go, and the rollout correction."""

from __future__ import annotations

from rlhf_ray.algorithms import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, LOSS_AGGREGATIONS
from rlhf_ray.config.issues import ConfigIssue
from rlhf_ray.config.plugins import import_plugins
from rlhf_ray.config.schema import Config


def check_registered_names(cfg: Config) -> list[ConfigIssue]:
    """The plugins import, and every registry name the config holds is registered."""
    algo = cfg.algorithm
    failures = import_plugins(algo.plugins)
    issues = [ConfigIssue(f"algorithm.plugins.{position}", message) for position, message in failures.items()]
    for path, name, registry in (
        ("algorithm.advantage_estimator", algo.advantage_estimator, ADVANTAGE_ESTIMATORS),
        ("algorithm.loss_aggregation", algo.loss_aggregation, LOSS_AGGREGATIONS),
        ("algorithm.kl.estimator", algo.kl.estimator, KL_ESTIMATORS),
    ):
        if name not in registry:
            registered = ", ".join(registry.names())
            hint = "" if algo.plugins else "; a module of algorithm.plugins may register more"
            issues.append(ConfigIssue(path, f"{name!r} is not a registered {registry.kind} ({registered}){hint}"))
    return issues


def check_algorithm(cfg: Config) -> list[ConfigIssue]:
    algo = cfg.algorithm
    estimator = ADVANTAGE_ESTIMATORS[algo.advantage_estimator]
    issues = []
    if estimator.needs_groups and cfg.rollout.samples_per_prompt < 2:
        issues.append(
            ConfigIssue(
                "rollout.samples_per_prompt",
                f"advantage estimator {algo.advantage_estimator!r} compares samples of the same prompt "
                f"and needs at least 2 per prompt (got {cfg.rollout.samples_per_prompt})",
            )
        )
    if algo.old_logprobs == "rollout" and not cfg.rollout.return_logprobs:
        issues.append(ConfigIssue("algorithm.old_logprobs", "'rollout' needs rollout.return_logprobs: true"))
    if algo.kl.controller == "adaptive" and algo.kl.target is None:
        issues.append(ConfigIssue("algorithm.kl.target", "is required by the adaptive KL controller"))
    if algo.kl.controller == "adaptive" and algo.kl.coef == 0:
        issues.append(ConfigIssue("algorithm.kl.coef", "must be > 0 for the adaptive KL controller to adapt"))
    if algo.kl.coef > 0 and algo.kl.placement == "loss" and not KL_ESTIMATORS[algo.kl.estimator].usable_as_loss:
        issues.append(
            ConfigIssue(
                "algorithm.kl.estimator",
                f"{algo.kl.estimator!r} as a loss term has zero expected gradient and does not restrain the "
                f"policy: use 'k2' or 'k3' with placement 'loss', or placement 'reward' with {algo.kl.estimator!r}",
            )
        )
    if algo.kl.coef > 0 and algo.kl.placement == "reward" and not estimator.kl_in_reward:
        issues.append(
            ConfigIssue(
                "algorithm.kl.placement",
                f"advantage estimator {algo.advantage_estimator!r} does not take a KL in the reward: set "
                "placement 'loss' (with 'k2' or 'k3'), or algorithm.kl.coef 0",
            )
        )
    if algo.old_logprobs == "rollout" and cfg.rollout.truncates:
        issues.append(
            ConfigIssue(
                "algorithm.old_logprobs",
                "'rollout' starts the PPO ratio from the engines' log-probs, which top-k / top-p truncation "
                "raises above the policy's: use 'recompute' (with algorithm.rollout_correction), or "
                "rollout.top_p 1 and rollout.top_k -1",
            )
        )
    return issues + _check_rollout_correction(cfg)


def _check_rollout_correction(cfg: Config) -> list[ConfigIssue]:
    correction = cfg.algorithm.rollout_correction
    if correction.mode == "none":
        return []
    issues = []
    if cfg.algorithm.old_logprobs == "rollout":
        issues.append(
            ConfigIssue(
                "algorithm.rollout_correction.mode",
                f"'{correction.mode}' weighs pi_old / pi_rollout and needs recomputed old log-probs: set "
                "algorithm.old_logprobs to 'recompute'",
            )
        )
    if not cfg.rollout.return_logprobs:
        issues.append(
            ConfigIssue(
                "algorithm.rollout_correction.mode",
                f"'{correction.mode}' needs the engines' log-probs: set rollout.return_logprobs to true",
            )
        )
    if correction.mode == "mis" and correction.mis_low >= correction.mis_high:
        issues.append(
            ConfigIssue(
                "algorithm.rollout_correction.mis_low",
                f"{correction.mis_low:g} must be below mis_high ({correction.mis_high:g})",
            )
        )
    return issues
