"""Cross-field checks: every problem found at once, each naming the field to change."""

import pytest
from pydantic import BaseModel

from rlhf_ray.config import Config, ConfigError, validate_config
from rlhf_ray.config.schema import Section
from rlhf_ray.trainers.pipeline import pipeline_jobs
from tests.support.raw_configs import base


def problems_of(raw: dict) -> list:
    with pytest.raises(ConfigError) as exc:
        validate_config(raw)
    return exc.value.problems


def issues_of(raw: dict) -> dict[str, str]:
    return {p.path: p.message for p in problems_of(raw)}


def test_base_is_valid():
    cfg = validate_config(base())
    assert cfg.active_roles() == ["policy", "critic", "reference", "reward"]
    assert cfg.samples_per_step() == 32


def test_critic_free_function_reward_without_kl_needs_policy_and_reward_function():
    cfg = validate_config(
        base(
            algorithm={"advantage_estimator": "grpo", "kl": {"coef": 0}},
            reward={"source": "function", "function": "rlhf_ray.rewards.math:exact_match"},
        )
    )
    assert cfg.active_roles() == ["policy", "reward"]
    assert not cfg.role_uses_accelerator("reward")


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo", "reinforce++_baseline"])
def test_group_estimators_need_two_samples_per_prompt(estimator):
    found = issues_of(base(algorithm={"advantage_estimator": estimator}, rollout={"samples_per_prompt": 1}))
    assert f"{estimator!r} compares samples of the same prompt" in found["rollout.samples_per_prompt"]


@pytest.mark.parametrize("estimator", ["gae", "reinforce++"])
def test_other_estimators_accept_one_sample(estimator):
    raw = base(algorithm={"advantage_estimator": estimator}, rollout={"samples_per_prompt": 1})
    assert validate_config(raw).rollout.samples_per_prompt == 1


def test_batch_sizes_must_divide_by_ranks_and_samples():
    raw = base(
        train={"policy": {"micro_batch_size": 5, "global_batch_size": 12}},
        resources={"device": "cpu", "policy": {"num_nodes": 1, "gpus_per_node": 2}},
        data={"prompts_per_step": 5},
        rollout={"samples_per_prompt": 8},
    )
    messages = [p.message for p in problems_of(raw) if p.path == "train.policy.global_batch_size"]
    assert any("not a multiple of micro_batch_size x data-parallel ranks = 5 x 2 = 10" in m for m in messages)
    assert any("does not divide the samples per iteration" in m and "= 40" in m for m in messages)
    assert any("not a multiple of rollout.samples_per_prompt (8)" in m for m in messages)


def test_critic_batches_are_checked_only_when_there_is_a_critic():
    bad_critic = {"critic": {"micro_batch_size": 5, "global_batch_size": 16}}
    assert "train.critic.global_batch_size" in issues_of(base(train=bad_critic))
    grpo = base(train=bad_critic, algorithm={"advantage_estimator": "grpo"})
    assert validate_config(grpo).train.critic.micro_batch_size == 5


def test_gpu_cluster_too_small_names_what_is_needed():
    raw = base(
        resources={
            "device": "cuda",
            "num_nodes": 1,
            "gpus_per_node": 4,
            "policy": {"gpus_per_node": 2},
            "critic": {"gpus_per_node": 2},
        },
        rollout={"num_engines": 2, "samples_per_prompt": 2},
    )
    found = issues_of(raw)
    assert found["resources"] == (
        "the roles need 8 GPUs (policy: 2, critic: 2, reference: 1, reward: 1, rollout (2 engines x tp 1): 2) "
        "but the cluster has 4 (num_nodes 1 x gpus_per_node 4)"
    )
    raw["resources"]["colocate"] = [["policy", "reference"], ["critic", "reward"]]
    raw["resources"]["reference"] = {"gpus_per_node": 2}
    raw["resources"]["reward"] = {"gpus_per_node": 2}
    raw["rollout"]["num_engines"] = 0
    assert "rollout.num_engines" in issues_of(raw)
    raw["rollout"]["num_engines"] = 1
    raw["resources"]["gpus_per_node"] = 5
    assert validate_config(raw).resources.colocate == [["policy", "reference"], ["critic", "reward"]]


def test_role_larger_than_a_node_or_the_cluster():
    found = issues_of(
        base(
            resources={"device": "cuda", "num_nodes": 2, "gpus_per_node": 8, "policy": {"num_nodes": 3}},
            rollout={"tensor_parallel_size": 16},
        )
    )
    assert found["resources.policy.num_nodes"] == "3 exceeds resources.num_nodes (2)"
    assert "an engine is kept within one node" in found["rollout.tensor_parallel_size"]


def test_cpu_cluster_checks_logical_cpus():
    found = issues_of(base(resources={"device": "cpu", "num_cpus": 4, "cpus_per_actor": 1}))
    assert found["resources.num_cpus"] == "4 logical CPUs, but the roles need 5 (5 actors x resources.cpus_per_actor 1)"
    raw = base(resources={"device": "cpu", "num_cpus": 3, "colocate": [["policy", "reference"], ["critic", "reward"]]})
    assert validate_config(raw).resources.num_cpus == 3


def test_colocation_groups_are_checked():
    problems = problems_of(
        base(
            resources={
                "device": "cpu",
                "colocate": [["policy"], ["critic", "reward"], ["reward", "reference"]],
                "reference": {"gpus_per_node": 2},
            }
        )
    )
    found = [(p.path, p.message) for p in problems]
    assert ("resources.colocate.0", "a colocation group needs at least two roles, got ['policy']") in found
    assert ("resources.colocate.2", "a role may be in only one colocation group: ['reward']") in found
    assert (
        "resources.colocate.2",
        "colocated roles need the same nodes x gpus_per_node (reward: 1x1, reference: 1x2)",
    ) in found


def test_shared_processes_need_a_colocation_group():
    found = issues_of(base(resources={"device": "cpu", "shared_processes": True}))
    assert found["resources.shared_processes"] == (
        "puts each colocation group's roles in one process, but resources.colocate names no group"
    )
    raw = base(resources={"device": "cpu", "shared_processes": True, "colocate": [["policy", "reference"]]})
    assert validate_config(raw).resources.shared_processes


def test_head_dim_below_32_is_rejected_for_vllm_cpu():
    found = issues_of(base(models={"tiny": {"hidden_size": 64, "num_heads": 4}}))
    assert "head_dim = hidden_size / num_heads = 16" in found["models.tiny.num_heads"]
    assert "vLLM's CPU backend needs at least 32" in found["models.tiny.num_heads"]


def test_real_models_need_paths():
    found = issues_of({"resources": {"device": "cpu"}, "rollout": {"samples_per_prompt": 2}})
    assert found["models.policy.path"] == "is required when models.tiny is not set"
    assert "models.reward.path" in found


def test_sequence_must_fit_the_tiny_model():
    found = issues_of(base(models={"tiny": {"hidden_size": 64, "num_heads": 2, "max_position_embeddings": 64}}))
    assert (
        "shorter than data.max_prompt_length + rollout.max_new_tokens = 768"
        in found["models.tiny.max_position_embeddings"]
    )


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ({"source": "function"}, "is required when reward.source is 'function'"),
        ({"source": "function", "function": "no_colon"}, "is not of the form 'module:function'"),
        ({"source": "function", "function": "not_a_module_xyz:f"}, "cannot import module 'not_a_module_xyz'"),
        ({"source": "function", "function": "rlhf_ray.rewards.math:nope"}, "has no function 'nope'"),
        ({"source": "model", "function": "rlhf_ray.rewards.math:exact_match"}, "set source to 'function'"),
    ],
)
def test_reward_function_is_checked_before_anything_starts(reward, message):
    assert message in issues_of(base(reward=reward))["reward.function"]


SUPPORT = "tests.support.reward_functions"


def function_reward(*functions, **fields) -> dict:
    return {"source": "function", "functions": list(functions), **fields}


def test_a_parameter_no_argument_fills_fails_naming_the_function_and_parameter():
    reward = function_reward(
        {"function": "rlhf_ray.rewards.demo:concise"}, {"function": f"{SUPPORT}:needs_a_rubric", "weight": 0.5}
    )
    assert issues_of(base(reward=reward)) == {
        "reward.functions.1.function": f"{SUPPORT}:needs_a_rubric: parameter 'rubric' cannot be filled: it is none "
        "of prompts, responses, completions, labels, messages, nor a column of the prompt rows (their other "
        "columns: none)"
    }


def test_positional_only_parameters_are_refused():
    reward = {"source": "function", "function": f"{SUPPORT}:positional_only"}
    messages = [p.message for p in problems_of(base(reward=reward)) if p.path == "reward.function"]
    assert messages == [
        f"{SUPPORT}:positional_only: parameter '{name}' is positional-only, but a reward function is called by "
        "keyword (prompts, responses, completions, labels, messages, and the prompt rows' columns)"
        for name in ("prompts", "responses")
    ]


def test_the_columns_of_a_jsonl_file_fill_parameters(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('\n{"prompt": "Grade this.", "answer": "4", "rubric": "short", "topic": "cats"}\n')
    reward = {"source": "function", "function": f"{SUPPORT}:needs_a_rubric"}
    data = {"train_path": str(prompts), "label_key": "answer"}
    assert validate_config(base(reward=reward, data=data)).reward.function == f"{SUPPORT}:needs_a_rubric"
    without = function_reward({"function": f"{SUPPORT}:times_difficulty"})
    assert (
        "(their other columns: rubric, topic)"
        in issues_of(base(reward=without, data=data))["reward.functions.0.function"]
    )


def test_columns_not_known_before_loading_accept_any_name(tmp_path):
    rows = tmp_path / "prompts.json"
    rows.write_text('[{"prompt": "Grade this."}]')
    reward = {"source": "function", "function": f"{SUPPORT}:needs_a_rubric"}
    assert validate_config(base(reward=reward, data={"train_path": str(rows)})).data.train_path == str(rows)


def test_function_and_functions_exclude_each_other():
    both = function_reward({"function": f"{SUPPORT}:length"}, function=f"{SUPPORT}:length")
    assert issues_of(base(reward=both)) == {
        "reward.functions": "and reward.function are both set: list every function under reward.functions "
        "(reward.function is the shorthand for one)"
    }
    model = {"source": "model", "functions": [{"function": f"{SUPPORT}:length"}]}
    assert issues_of(base(reward=model)) == {
        "reward.functions": "is set but reward.source is 'model': set source to 'function'"
    }


def test_each_function_needs_a_metric_name_of_its_own():
    twice = function_reward({"function": f"{SUPPORT}:length"}, {"function": f"{SUPPORT}:length", "weight": 2})
    assert issues_of(base(reward=twice)) == {
        "reward.functions.1.name": "'length' is also the name of reward.functions.0: set a name of its own "
        "(each is logged as rollout/reward/<name>)"
    }
    named = function_reward({"function": f"{SUPPORT}:length"}, {"function": f"{SUPPORT}:length", "name": "long"})
    assert [f.metric_name for f in validate_config(base(reward=named)).reward.weighted_functions()] == [
        "length",
        "long",
    ]


def test_adaptive_kl_needs_a_target_and_a_coefficient():
    found = issues_of(base(algorithm={"kl": {"controller": "adaptive", "coef": 0}}))
    assert found["algorithm.kl.target"] == "is required by the adaptive KL controller"
    assert "must be > 0" in found["algorithm.kl.coef"]


def _sections(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, Section):
                yield from _sections(candidate)


def test_every_field_is_documented():
    undocumented = [
        f"{section.__name__}.{name}"
        for section in _sections(Config)
        for name, field in section.model_fields.items()
        if not (field.description and field.description.strip())
    ]
    assert undocumented == []


def test_offload_needs_zero_3_for_params_and_a_gpu():
    found = issues_of(base(train={"policy": {"micro_batch_size": 4, "global_batch_size": 16, "offload_params": True}}))
    assert found["train.policy.offload_params"] == "needs zero_stage 3 (parameters are sharded)"
    assert found["train.policy"] == "offloading to CPU memory only applies on GPUs (resources.device is cpu)"


def test_compile_needs_zero_0_to_2():
    compiled = {"micro_batch_size": 4, "global_batch_size": 16, "compile": True}
    found = issues_of(base(train={"critic": {**compiled, "zero_stage": 3}, "policy": {**compiled, "zero_stage": 2}}))
    assert found["train.critic.compile"] == "needs zero_stage 0-2 (ZeRO-3 gathers parameters in hooks)"
    assert "train.policy.compile" not in found


def test_frozen_compile_needs_zero_0():
    found = issues_of(base(models={"reference": {"compile": True, "zero_stage": 3}, "reward": {"compile": True}}))
    assert found["models.reference.compile"] == "needs zero_stage 0 (ZeRO-3 gathers parameters in hooks)"
    assert "models.reward.compile" not in found


def stage_issues(raw: dict, stage: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        validate_config(raw, stages=(stage,))
    return {p.path: p.message for p in exc.value.problems}


def test_stage_checks_run_only_for_the_stage_that_runs():
    raw = base(sft={"train": {"micro_batch_size": 4, "global_batch_size": 6}})
    validate_config(raw)  # a PPO run does not care about the SFT stage
    issues = stage_issues(raw, "sft")
    assert issues["sft.data.train_path"] == "is required unless a simulated `labeller` writes the data"
    assert issues["sft.train.global_batch_size"] == (
        "6 is not a multiple of micro_batch_size x data-parallel ranks (resources.policy) = 4 x 1 = 4"
    )
    labelled = base(labeller={}, reward_model={"data": {"max_length": 4096}})
    assert stage_issues(labelled, "reward_model") == {
        "reward_model.data.max_length": "4096 exceeds models.tiny.max_position_embeddings (1024)"
    }
    validate_config(labelled, stages=("sft",))


def test_a_pipeline_with_reward_functions_runs_sft_then_ppo_without_a_reward_model():
    raw = base(
        labeller={},
        reward={"source": "function", "function": "rlhf_ray.rewards.demo:concise"},
        sft={"checkpoint": {"export_dir": None}},
        reward_model={"checkpoint": {"export_dir": None}},  # no such stage: not checked
    )
    assert stage_issues(raw, "pipeline") == {
        "sft.checkpoint.export_dir": "is required: the next stage reads the model there"
    }
    cfg = validate_config(base(reward={"source": "function", "function": "rlhf_ray.rewards.demo:concise"}))
    assert pipeline_jobs(cfg) == ("sft", "ppo")
    assert pipeline_jobs(validate_config(base())) == ("sft", "rm", "ppo")
    assert pipeline_jobs(validate_config(base(pipeline={"method": "dpo"}))) == ("sft", "dpo")


def test_a_dpo_pipeline_checks_the_dpo_stage_and_needs_no_reward_model():
    raw = base(
        labeller={},
        pipeline={"method": "dpo"},
        reward={"source": "function", "function": "rlhf_ray.rewards.demo:concise"},
        reward_model={"checkpoint": {"export_dir": None}},
        dpo={"train": {"micro_batch_size": 4, "global_batch_size": 6}, "checkpoint": {"export_dir": None}},
    )
    assert stage_issues(raw, "pipeline") == {
        "dpo.train.global_batch_size": (
            "6 is not a multiple of micro_batch_size x data-parallel ranks (resources.policy) = 4 x 1 = 4"
        ),
        "dpo.checkpoint.export_dir": "is required: the next stage reads the model there",
    }


@pytest.mark.parametrize(
    ("dpo", "path", "message"),
    [
        ({"loss": "kto"}, "dpo.loss", "Input should be 'dpo', 'cdpo' or 'ipo'"),
        ({"beta": 0}, "dpo.beta", "Input should be greater than 0"),
        ({"label_smoothing": 0.5}, "dpo.label_smoothing", "Input should be less than 0.5"),
    ],
)
def test_a_bad_dpo_loss_name_or_beta_is_named(dpo, path, message):
    issues = issues_of(base(dpo=dpo))
    assert issues[path].startswith(message), issues


def test_label_smoothing_goes_with_conservative_dpo_only():
    validate_config(base(labeller={}, dpo={"loss": "cdpo", "label_smoothing": 0.1}), stages=("dpo",))
    assert stage_issues(base(labeller={}, dpo={"loss": "cdpo"}), "dpo") == {
        "dpo.label_smoothing": "must be > 0 with dpo.loss 'cdpo' (at 0 it is plain 'dpo')"
    }
    assert stage_issues(base(labeller={}, dpo={"loss": "ipo", "label_smoothing": 0.1}), "dpo") == {
        "dpo.label_smoothing": "applies only to dpo.loss 'cdpo', not 'ipo'; set it to 0"
    }


def test_gold_and_labeller_functions_must_import():
    issues = issues_of(base(reward={"gold_function": "rlhf_ray.rewards.gold:nope"}, labeller={"gold_function": "x"}))
    assert issues["reward.gold_function"] == "module 'rlhf_ray.rewards.gold' has no function 'nope'"
    assert issues["labeller.gold_function"] == "'x' is not of the form 'module:function'"


def test_the_defaults_make_a_valid_experiment():
    cfg = validate_config({"models": {"tiny": {}}, "resources": {"device": "cpu"}})
    assert cfg.samples_per_step() % cfg.train.policy.global_batch_size == 0


def test_tensor_parallel_engines_are_vllm_and_split_the_heads():
    issues = issues_of(base(rollout={"samples_per_prompt": 2, "tensor_parallel_size": 4}))
    assert issues["rollout.tensor_parallel_size"] == "4 does not divide models.tiny.num_heads (2)"
    issues = issues_of(base(rollout={"samples_per_prompt": 2, "tensor_parallel_size": 2, "engine": "hf"}))
    assert issues["rollout.tensor_parallel_size"] == "is 2, but only vLLM engines shard a model"
    validate_config(base(rollout={"samples_per_prompt": 2, "tensor_parallel_size": 2}))


def test_rollout_old_logprobs_need_the_engines_logprobs():
    issues = issues_of(
        base(algorithm={"old_logprobs": "rollout"}, rollout={"samples_per_prompt": 2, "return_logprobs": False})
    )
    assert issues["algorithm.old_logprobs"] == "'rollout' needs rollout.return_logprobs: true"


def test_in_process_engines_are_one_per_policy_rank():
    raw = base(
        rollout={"samples_per_prompt": 2, "weight_sync": "in_process", "num_engines": 2, "tensor_parallel_size": 2}
    )
    issues = issues_of(raw)
    assert issues["rollout.num_engines"] == "is 2, but in_process engines are one per policy rank (1)"
    assert issues["rollout.tensor_parallel_size"] == "must be 1 for an engine inside a policy rank"


def test_k1_is_no_loss_term():
    issues = issues_of(base(algorithm={"kl": {"estimator": "k1", "placement": "loss"}}))
    assert "'k1' as a loss term has zero expected gradient" in issues["algorithm.kl.estimator"]
    assert "use 'k2' or 'k3'" in issues["algorithm.kl.estimator"]
    for estimator in ("k2", "k3"):
        validate_config(base(algorithm={"kl": {"estimator": estimator, "placement": "loss"}}))
    validate_config(base(algorithm={"kl": {"estimator": "k1", "placement": "reward"}}))


@pytest.mark.parametrize("truncation", [{"top_p": 0.9}, {"top_k": 20}])
def test_rollout_old_logprobs_are_not_the_policys_under_truncation(truncation):
    issues = issues_of(base(algorithm={"old_logprobs": "rollout"}, rollout={"samples_per_prompt": 2, **truncation}))
    assert "top-k / top-p truncation raises" in issues["algorithm.old_logprobs"]
    validate_config(base(rollout={"samples_per_prompt": 2, **truncation}))


def test_rollout_correction_needs_recomputed_old_logprobs_and_the_engines_logprobs():
    raw = base(
        algorithm={"old_logprobs": "rollout", "rollout_correction": {"mode": "tis"}},
        rollout={"samples_per_prompt": 2, "return_logprobs": False},
    )
    messages = [p.message for p in problems_of(raw) if p.path == "algorithm.rollout_correction.mode"]
    assert messages == [
        "'tis' weighs pi_old / pi_rollout and needs recomputed old log-probs: set algorithm.old_logprobs to "
        "'recompute'",
        "'tis' needs the engines' log-probs: set rollout.return_logprobs to true",
    ]
    low_high = issues_of(base(algorithm={"rollout_correction": {"mode": "mis", "mis_low": 3.0, "mis_high": 2.0}}))
    assert low_high["algorithm.rollout_correction.mis_low"] == "3 must be below mis_high (2)"
    cfg = validate_config(base(algorithm={"rollout_correction": {"mode": "tis", "level": "sequence", "tis_cap": 5}}))
    assert cfg.algorithm.rollout_correction.tis_cap == 5.0


def test_registry_names_are_checked_and_list_what_is_registered():
    issues = issues_of(
        base(algorithm={"advantage_estimator": "ppo", "loss_aggregation": "sum", "kl": {"estimator": "k4"}})
    )
    assert issues["algorithm.advantage_estimator"].startswith(
        "'ppo' is not a registered advantage estimator (dr_grpo, gae, grpo, reinforce++, reinforce++_baseline, rloo)"
    )
    assert "'sum' is not a registered loss aggregation (seq_mean_token_mean, " in issues["algorithm.loss_aggregation"]
    assert issues["algorithm.kl.estimator"].startswith("'k4' is not a registered KL estimator (k1, k2, k3)")
    assert "algorithm.plugins may register more" in issues["algorithm.kl.estimator"]


def test_plugins_register_estimators_that_the_checks_read():
    plugin = {"plugins": ["tests.trainers.toy_estimator"], "advantage_estimator": "score_minus_half"}
    issues = issues_of(base(algorithm=plugin))
    assert issues["algorithm.kl.placement"] == (
        "advantage estimator 'score_minus_half' does not take a KL in the reward: set placement 'loss' "
        "(with 'k2' or 'k3'), or algorithm.kl.coef 0"
    )
    cfg = validate_config(base(algorithm={**plugin, "kl": {"coef": 0}}))
    assert cfg.active_roles() == ["policy", "reward"]  # its spec needs no critic
    missing = issues_of(base(algorithm={"plugins": ["tests.no_such_plugin"], "advantage_estimator": "nope"}))
    assert missing["algorithm.plugins.0"].startswith(
        "cannot import plugin module 'tests.no_such_plugin': ModuleNotFoundError"
    )
    assert missing["algorithm.advantage_estimator"].startswith("'nope' is not a registered advantage estimator")


def test_generating_ahead_needs_engines_of_their_own_and_an_off_policy_correction():
    raw = base(rollout={"async_steps": 1, "weight_sync": "in_process"}, algorithm={"old_logprobs": "rollout"})
    [problem] = [p for p in problems_of(raw) if p.path == "rollout.async_steps"]
    assert "in_process engines live in the policy's ranks" in problem.message
    found = issues_of(base(rollout={"async_steps": 2}))
    assert "up to 2 version(s) old" in found["rollout.async_steps"]
    assert "rollout_correction.mode to 'tis' or 'mis'" in found["rollout.async_steps"]
    validate_config(base(rollout={"async_steps": 1}, algorithm={"rollout_correction": {"mode": "tis"}}))
    validate_config(base(rollout={"async_steps": 1}, algorithm={"old_logprobs": "rollout"}))
