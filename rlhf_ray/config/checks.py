"""Checks that relate several fields of a schema-valid config.

Each check returns the problems it finds as ``ConfigIssue``s naming the field to change; all of
them run, so a user sees every problem at once, before any Ray actor starts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from rlhf_ray.config.algorithm_checks import check_algorithm, check_registered_names
from rlhf_ray.config.environment_checks import check_environment
from rlhf_ray.config.feedback_checks import check_feedback
from rlhf_ray.config.issues import ConfigIssue
from rlhf_ray.config.plugins import SpecError, import_callable
from rlhf_ray.config.resource_checks import check_colocation, check_resources_fit
from rlhf_ray.config.reward_arguments import prompt_columns, unfillable_parameters
from rlhf_ray.config.schema import Config, RewardFunctionConfig

__all__ = ["ConfigIssue", "check_config", "check_stage"]


def check_config(cfg: Config) -> list[ConfigIssue]:
    issues = check_registered_names(cfg)
    if issues:  # the other checks look the names up
        return issues
    for check in (
        _check_models,
        _check_reward,
        check_algorithm,
        _check_engines,
        check_environment,
        _check_lengths,
        _check_batch_sizes,
        _check_deepspeed_options,
        check_colocation,
        check_resources_fit,
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


def _check_reward_server(url: str | None) -> list[ConfigIssue]:
    if url is None:
        return [ConfigIssue("reward.server.url", "is required when reward.source is 'http' (e.g. http://host:8000/)")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [ConfigIssue("reward.server.url", f"{url!r} is not an http:// or https:// URL with a host")]
    try:
        parts.port  # noqa: B018 - reading the port parses it
    except ValueError as exc:
        return [ConfigIssue("reward.server.url", f"{url!r}: {exc}")]
    return []


def _check_reward(cfg: Config) -> list[ConfigIssue]:
    reward = cfg.reward
    columns = prompt_columns(cfg.data)
    issues = _check_function("reward.gold_function", reward.gold_function, columns)
    if cfg.labeller is not None:  # judges the synthetic prompts, which have no other column
        issues += _check_function("labeller.gold_function", cfg.labeller.gold_function, columns=set())
    named = [name for name, value in (("function", reward.function), ("functions", reward.functions)) if value]
    if reward.source != "function":
        issues += [
            ConfigIssue(f"reward.{name}", f"is set but reward.source is {reward.source!r}: set source to 'function'")
            for name in named
        ]
    if reward.source == "http":
        issues += _check_reward_server(reward.server.url)
    elif reward.server.url is not None:
        issues.append(
            ConfigIssue("reward.server.url", f"is set but reward.source is {reward.source!r}: set source to 'http'")
        )
    if reward.normalize and reward.source != "model":
        issues.append(ConfigIssue("reward.normalize", f"applies to a reward model; reward.source is {reward.source!r}"))
    if reward.source != "function":
        return issues
    if not named:
        return [
            *issues,
            ConfigIssue(
                "reward.function",
                "is required when reward.source is 'function' ('module:function'; or reward.functions, with weights)",
            ),
        ]
    if len(named) == 2:
        return [
            *issues,
            ConfigIssue(
                "reward.functions",
                "and reward.function are both set: list every function under reward.functions "
                "(reward.function is the shorthand for one)",
            ),
        ]
    return issues + _check_reward_functions(reward.function, reward.functions, columns)


def _check_reward_functions(
    function: str | None, functions: list[RewardFunctionConfig], columns: set[str] | None
) -> list[ConfigIssue]:
    """The function, or each of the functions, imports and can be called; their metric names differ."""
    if function is not None:
        return _check_function("reward.function", function, columns)
    issues = []
    first_named: dict[str, int] = {}
    for index, entry in enumerate(functions):
        issues += _check_function(f"reward.functions.{index}.function", entry.function, columns)
        name = entry.metric_name
        if name in first_named:
            issues.append(
                ConfigIssue(
                    f"reward.functions.{index}.name",
                    f"{name!r} is also the name of reward.functions.{first_named[name]}: set a name of its own "
                    "(each is logged as rollout/reward/<name>)",
                )
            )
        first_named.setdefault(name, index)
    return issues


def _check_function(path: str, spec: str | None, columns: set[str] | None) -> list[ConfigIssue]:
    """A ``module:function`` that imports and whose every required parameter a reward call fills, given
    the prompt rows' other ``columns`` (None: not known yet). None: nothing to check."""
    if spec is None:
        return []
    try:
        function = import_callable(spec, "function")
    except SpecError as exc:
        return [ConfigIssue(path, str(exc))]
    return [ConfigIssue(path, f"{spec}: {problem}") for problem in unfillable_parameters(function, columns)]


def _check_engines(cfg: Config) -> list[ConfigIssue]:
    """Engines inside the policy's ranks, one per rank; tensor parallelism only where vLLM shards;
    generating ahead only with engines of their own and an off-policy correction."""
    return _check_async(cfg) + _check_engine_layout(cfg)


def _check_async(cfg: Config) -> list[ConfigIssue]:
    steps = cfg.rollout.async_steps
    if steps == 0:
        return []
    issues = []
    if cfg.rollout.weight_sync == "in_process":
        issues.append(
            ConfigIssue(
                "rollout.async_steps",
                f"is {steps}, but in_process engines live in the policy's ranks and cannot generate while they "
                "update: use weight_sync 'broadcast' or 'object_store'",
            )
        )
    algo = cfg.algorithm
    if algo.rollout_correction.mode == "none" and algo.old_logprobs == "recompute":
        issues.append(
            ConfigIssue(
                "rollout.async_steps",
                f"is {steps}: responses come from a policy up to {steps} version(s) old, which the PPO ratio of "
                "recomputed old log-probs does not see: set algorithm.rollout_correction.mode to 'tis' or "
                "'mis', or algorithm.old_logprobs to 'rollout'",
            )
        )
    return issues


def _check_engine_layout(cfg: Config) -> list[ConfigIssue]:
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


def _check_lengths(cfg: Config) -> list[ConfigIssue]:
    if cfg.models.tiny is None:
        return []
    longest = cfg.data.max_prompt_length + cfg.rollout.max_continuation_tokens
    if longest > cfg.models.tiny.max_position_embeddings:
        parts = "data.max_prompt_length + rollout.max_new_tokens"
        if cfg.rollout.max_turns > 1:
            parts = (
                "data.max_prompt_length + rollout.max_turns x rollout.max_new_tokens + (rollout.max_turns - 1) x "
                "rollout.max_environment_tokens"
            )
        return [
            ConfigIssue(
                "models.tiny.max_position_embeddings",
                f"is {cfg.models.tiny.max_position_embeddings}, shorter than {parts} = {longest}",
            )
        ]
    return []


def _check_batch_sizes(cfg: Config) -> list[ConfigIssue]:
    issues = []
    samples_per_step = cfg.samples_per_step()
    group = cfg.rollout.samples_per_prompt
    for role in cfg.trained_roles():
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


def _check_deepspeed_options(cfg: Config) -> list[ConfigIssue]:
    issues = []
    for role in cfg.trained_roles():
        train = getattr(cfg.train, role)
        if train.offload_params and train.zero_stage != 3:
            issues.append(ConfigIssue(f"train.{role}.offload_params", "needs zero_stage 3 (parameters are sharded)"))
        if train.compile and train.zero_stage == 3:
            issues.append(
                ConfigIssue(f"train.{role}.compile", "needs zero_stage 0-2 (ZeRO-3 gathers parameters in hooks)")
            )
        if (train.offload_params or train.offload_optimizer) and cfg.resources.device == "cpu":
            issues.append(
                ConfigIssue(f"train.{role}", "offloading to CPU memory only applies on GPUs (resources.device is cpu)")
            )
    for role in ("reference", "reward"):
        model = getattr(cfg.models, role)
        if model.compile and model.zero_stage == 3:
            issues.append(
                ConfigIssue(f"models.{role}.compile", "needs zero_stage 0 (ZeRO-3 gathers parameters in hooks)")
            )
    return issues


STAGE_ROLES = {"sft": "policy", "reward_model": "reward", "dpo": "policy"}


def check_stage(cfg: Config, name: str) -> list[ConfigIssue]:
    """Checks of a stage, run when it runs: the SFT (``sft``), reward-model (``reward_model``) or DPO
    (``dpo``) stage's data source, batch sizes and lengths, what the ``pipeline`` passes between stages, or
    the labelling app's settings (``feedback``)."""
    if name == "pipeline":
        return _check_pipeline(cfg)
    if name == "feedback":
        return check_feedback(cfg)
    stage, role = getattr(cfg, name), STAGE_ROLES[name]
    issues = _check_dpo_loss(cfg) if name == "dpo" else []
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


def _check_dpo_loss(cfg: Config) -> list[ConfigIssue]:
    dpo = cfg.dpo
    if dpo.loss == "cdpo" and dpo.label_smoothing == 0:
        return [ConfigIssue("dpo.label_smoothing", "must be > 0 with dpo.loss 'cdpo' (at 0 it is plain 'dpo')")]
    if dpo.loss != "cdpo" and dpo.label_smoothing != 0:
        return [ConfigIssue("dpo.label_smoothing", f"applies only to dpo.loss 'cdpo', not {dpo.loss!r}; set it to 0")]
    return []


def _check_pipeline(cfg: Config) -> list[ConfigIssue]:
    stages = pipeline_stages(cfg)
    issues = [issue for name in stages for issue in check_stage(cfg, name)]
    for name in stages:
        if getattr(cfg, name).checkpoint.export_dir is None:
            issues.append(
                ConfigIssue(f"{name}.checkpoint.export_dir", "is required: the next stage reads the model there")
            )
    return issues


def pipeline_stages(cfg: Config) -> tuple[str, ...]:
    """The config sections of the stages ``rlhf-ray pipeline`` runs before PPO, or its DPO stages: SFT, and
    the reward model when PPO optimises one (not reward functions or a served reward)."""
    if cfg.pipeline.method == "dpo":
        return ("sft", "dpo")
    return ("sft", "reward_model") if cfg.reward.source == "model" else ("sft",)
