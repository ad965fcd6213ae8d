"""Checks that relate several fields of a schema-valid config.

Each check returns the problems it finds as ``ConfigIssue``s naming the field to change; all of
them run, so a user sees every problem at once, before any Ray actor starts.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rlhf_ray.algorithms import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, LOSS_AGGREGATIONS
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import PlacementUnit, plan_placement, rollout_units
from rlhf_ray.config.plugins import import_plugins
from rlhf_ray.config.schema import Config


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    """Dotted path of the field to change."""
    message: str


def check_config(cfg: Config) -> list[ConfigIssue]:
    issues = _check_registered_names(cfg)
    if issues:  # the other checks look the names up
        return issues
    for check in (
        _check_models,
        _check_reward,
        _check_algorithm,
        _check_engines,
        _check_lengths,
        _check_batch_sizes,
        _check_offload,
        _check_colocation,
        _check_resources_fit,
    ):
        issues.extend(check(cfg))
    return issues


def _check_models(cfg: Config) -> list[ConfigIssue]:
    if cfg.models.tiny is not None:
        tiny = cfg.models.tiny
        if tiny.hidden_size % tiny.num_heads:
            return [ConfigIssue("models.tiny.num_heads", f"must divide hidden_size ({tiny.hidden_size})")]
        head_dim = tiny.hidden_size // tiny.num_heads
        if head_dim < 32:
            return [
                ConfigIssue(
                    "models.tiny.num_heads",
                    f"head_dim = hidden_size / num_heads = {head_dim}, but vLLM's CPU backend needs "
                    "at least 32: use fewer heads or a wider model",
                )
            ]
        return []
    issues = []
    if cfg.models.policy.path is None:
        issues.append(ConfigIssue("models.policy.path", "is required when models.tiny is not set"))
    if cfg.reward.source == "model" and cfg.models.reward.path is None:
        issues.append(
            ConfigIssue(
                "models.reward.path",
                "is required when reward.source is 'model' and models.tiny is not set",
            )
        )
    return issues


def _check_reward(cfg: Config) -> list[ConfigIssue]:
    function = cfg.reward.function
    issues = _check_function("reward.gold_function", cfg.reward.gold_function)
    if cfg.labeller is not None:
        issues += _check_function("labeller.gold_function", cfg.labeller.gold_function)
    if cfg.reward.source == "model":
        if function is not None:
            issues.append(
                ConfigIssue("reward.function", "is set but reward.source is 'model': set source to 'function'")
            )
        return issues
    if cfg.reward.normalize:
        issues.append(ConfigIssue("reward.normalize", "applies to a reward model; reward.source is 'function'"))
    if function is None:
        return [
            *issues,
            ConfigIssue("reward.function", "is required when reward.source is 'function' ('module:function')"),
        ]
    return issues + _check_function("reward.function", function)


def _check_function(path: str, spec: str | None) -> list[ConfigIssue]:
    """A ``module:function`` that imports (None: nothing to check)."""
    if spec is None:
        return []
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        return [ConfigIssue(path, f"{spec!r} is not of the form 'module:function'")]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return [ConfigIssue(path, f"cannot import module {module_name!r}: {exc}")]
    if not callable(getattr(module, attr, None)):
        return [ConfigIssue(path, f"module {module_name!r} has no function {attr!r}")]
    return []


def _check_engines(cfg: Config) -> list[ConfigIssue]:
    """Engines inside the policy's ranks, one per rank; tensor parallelism only where vLLM shards."""
    size = cfg.rollout.tensor_parallel_size
    if cfg.rollout.weight_sync == "in_process":
        ranks = cfg.resources.policy.world_size
        issues = []
        if cfg.rollout.num_engines != ranks:
            issues.append(
                ConfigIssue(
                    "rollout.num_engines",
                    f"is {cfg.rollout.num_engines}, but in_process engines are one per policy rank ({ranks})",
                )
            )
        if size > 1:
            issues.append(ConfigIssue("rollout.tensor_parallel_size", "must be 1 for an engine inside a policy rank"))
        return issues
    if size == 1:
        return []
    if cfg.rollout.engine != "vllm":
        return [ConfigIssue("rollout.tensor_parallel_size", f"is {size}, but only vLLM engines shard a model")]
    tiny = cfg.models.tiny
    if tiny is not None and tiny.num_heads % size:
        return [
            ConfigIssue(
                "rollout.tensor_parallel_size", f"{size} does not divide models.tiny.num_heads ({tiny.num_heads})"
            )
        ]
    return []


def _check_registered_names(cfg: Config) -> list[ConfigIssue]:
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


def _check_algorithm(cfg: Config) -> list[ConfigIssue]:
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


def _check_lengths(cfg: Config) -> list[ConfigIssue]:
    if cfg.models.tiny is None:
        return []
    longest = cfg.data.max_prompt_length + cfg.rollout.max_new_tokens
    if longest > cfg.models.tiny.max_position_embeddings:
        return [
            ConfigIssue(
                "models.tiny.max_position_embeddings",
                f"is {cfg.models.tiny.max_position_embeddings}, shorter than data.max_prompt_length + "
                f"rollout.max_new_tokens = {longest}",
            )
        ]
    return []


def _trained_roles(cfg: Config) -> list[str]:
    return [role for role in ("policy", "critic") if role in cfg.active_roles()]


def _check_batch_sizes(cfg: Config) -> list[ConfigIssue]:
    issues = []
    samples_per_step = cfg.samples_per_step()
    group = cfg.rollout.samples_per_prompt
    for role in _trained_roles(cfg):
        train = getattr(cfg.train, role)
        ranks = cfg.resources.role(role).world_size
        path = f"train.{role}.global_batch_size"
        per_pass = train.micro_batch_size * ranks
        if train.global_batch_size % per_pass:
            issues.append(
                ConfigIssue(
                    path,
                    f"{train.global_batch_size} is not a multiple of micro_batch_size x data-parallel "
                    f"ranks = {train.micro_batch_size} x {ranks} = {per_pass}",
                )
            )
        if samples_per_step % train.global_batch_size:
            issues.append(
                ConfigIssue(
                    path,
                    f"{train.global_batch_size} does not divide the samples per iteration "
                    f"(data.prompts_per_step x rollout.samples_per_prompt = {samples_per_step})",
                )
            )
        if train.global_batch_size % group:
            issues.append(
                ConfigIssue(
                    path,
                    f"{train.global_batch_size} is not a multiple of rollout.samples_per_prompt ({group}): "
                    "an optimizer step must see whole groups of samples",
                )
            )
    return issues


def _check_offload(cfg: Config) -> list[ConfigIssue]:
    issues = []
    for role in _trained_roles(cfg):
        train = getattr(cfg.train, role)
        if train.offload_params and train.zero_stage != 3:
            issues.append(ConfigIssue(f"train.{role}.offload_params", "needs zero_stage 3 (parameters are sharded)"))
        if (train.offload_params or train.offload_optimizer) and cfg.resources.device == "cpu":
            issues.append(
                ConfigIssue(f"train.{role}", "offloading to CPU memory only applies on GPUs (resources.device is cpu)")
            )
    return issues


def _check_colocation(cfg: Config) -> list[ConfigIssue]:
    issues = []
    seen: set[str] = set()
    for i, group in enumerate(cfg.resources.colocate):
        path = f"resources.colocate.{i}"
        if len(group) < 2:
            issues.append(ConfigIssue(path, f"a colocation group needs at least two roles, got {group}"))
        repeated = seen.intersection(group)
        if repeated or len(set(group)) < len(group):
            issues.append(ConfigIssue(path, f"a role may be in only one colocation group: {sorted(repeated or group)}"))
        seen.update(group)
        shapes = {role: cfg.resources.role(role) for role in group}
        if len({(r.num_nodes, r.gpus_per_node) for r in shapes.values()}) > 1:
            described = ", ".join(f"{role}: {r.num_nodes}x{r.gpus_per_node}" for role, r in shapes.items())
            issues.append(ConfigIssue(path, f"colocated roles need the same nodes x gpus_per_node ({described})"))
    return issues


def _units(cfg: Config, kind: str) -> list[PlacementUnit]:
    """The placement plan's units, as they would be on a cluster of ``kind`` devices."""
    device = DeviceProfile(kind)
    return [*plan_placement(cfg, device, cfg.active_roles()), *rollout_units(cfg, device)]


def _label(cfg: Config, unit: PlacementUnit) -> str:
    if unit.roles == ("rollout",):
        return f"rollout ({cfg.rollout.num_engines} engines x tp {cfg.rollout.tensor_parallel_size})"
    return unit.name


def _check_resources_fit(cfg: Config) -> list[ConfigIssue]:
    res = cfg.resources
    issues = []
    for role in cfg.active_roles():
        shape = res.role(role)
        if shape.num_nodes > res.num_nodes:
            issues.append(
                ConfigIssue(
                    f"resources.{role}.num_nodes", f"{shape.num_nodes} exceeds resources.num_nodes ({res.num_nodes})"
                )
            )
    engine_nodes = cfg.rollout.num_nodes
    if engine_nodes is not None and engine_nodes > res.num_nodes:
        issues.append(ConfigIssue("rollout.num_nodes", f"{engine_nodes} exceeds resources.num_nodes ({res.num_nodes})"))
    if engine_nodes is not None and cfg.rollout.num_engines % engine_nodes:
        issues.append(
            ConfigIssue(
                "rollout.num_nodes",
                f"{engine_nodes} does not divide rollout.num_engines ({cfg.rollout.num_engines}): "
                "every node holds the same number of engines",
            )
        )
    if res.device == "cpu":
        if res.num_cpus is None:
            return issues
        units = _units(cfg, "cpu")
        actors = sum(unit.world_size for unit in units)
        needed = sum(unit.total()["CPU"] for unit in units)
        if needed > res.num_cpus:
            issues.append(
                ConfigIssue(
                    "resources.num_cpus",
                    f"{res.num_cpus} logical CPUs, but the roles need {needed:g} "
                    f"({actors} actors x resources.cpus_per_actor {res.cpus_per_actor:g})",
                )
            )
        return issues
    for role in cfg.active_roles():
        shape = res.role(role)
        if shape.gpus_per_node > res.gpus_per_node:
            issues.append(
                ConfigIssue(
                    f"resources.{role}.gpus_per_node",
                    f"{shape.gpus_per_node} exceeds resources.gpus_per_node ({res.gpus_per_node})",
                )
            )
    if cfg.rollout.tensor_parallel_size > res.gpus_per_node:
        issues.append(
            ConfigIssue(
                "rollout.tensor_parallel_size",
                f"{cfg.rollout.tensor_parallel_size} exceeds resources.gpus_per_node ({res.gpus_per_node}): "
                "an engine is kept within one node",
            )
        )
    gpus = {_label(cfg, unit): int(unit.total().get("GPU", 0)) for unit in _units(cfg, "cuda")}
    needed = sum(gpus.values())
    available = res.num_nodes * res.gpus_per_node
    if needed > available:
        breakdown = ", ".join(f"{label}: {count}" for label, count in gpus.items() if count)
        issues.append(
            ConfigIssue(
                "resources",
                f"the roles need {needed} GPUs ({breakdown}) but the cluster has {available} "
                f"(num_nodes {res.num_nodes} x gpus_per_node {res.gpus_per_node})",
            )
        )
    return issues


STAGE_ROLES = {"sft": "policy", "reward_model": "reward"}


def check_stage(cfg: Config, name: str) -> list[ConfigIssue]:
    """Checks of a stage, run when it runs: the SFT (``sft``) or reward-model (``reward_model``)
    stage's data source, batch sizes and lengths, or what the ``pipeline`` passes between stages."""
    if name == "pipeline":
        return _check_pipeline(cfg)
    stage, role = getattr(cfg, name), STAGE_ROLES[name]
    issues = []
    if stage.data.train_path is None and cfg.labeller is None:
        issues.append(
            ConfigIssue(f"{name}.data.train_path", "is required unless a simulated `labeller` writes the data")
        )
    train = stage.train
    ranks = cfg.resources.role(role).world_size
    per_pass = train.micro_batch_size * ranks
    if train.global_batch_size % per_pass:
        issues.append(
            ConfigIssue(
                f"{name}.train.global_batch_size",
                f"{train.global_batch_size} is not a multiple of micro_batch_size x data-parallel ranks "
                f"(resources.{role}) = {train.micro_batch_size} x {ranks} = {per_pass}",
            )
        )
    if cfg.models.tiny is not None and stage.data.max_length > cfg.models.tiny.max_position_embeddings:
        issues.append(
            ConfigIssue(
                f"{name}.data.max_length",
                f"{stage.data.max_length} exceeds models.tiny.max_position_embeddings "
                f"({cfg.models.tiny.max_position_embeddings})",
            )
        )
    return issues


def _check_pipeline(cfg: Config) -> list[ConfigIssue]:
    issues = check_stage(cfg, "sft") + check_stage(cfg, "reward_model")
    for name in ("sft", "reward_model"):
        if getattr(cfg, name).checkpoint.export_dir is None:
            issues.append(
                ConfigIssue(f"{name}.checkpoint.export_dir", "is required: the next stage reads the model there")
            )
    if cfg.reward.source != "model":
        issues.append(
            ConfigIssue("reward.source", "must be 'model' in a pipeline: PPO optimises the trained reward model")
        )
    return issues
