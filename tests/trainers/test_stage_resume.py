"""The SFT and reward-model stages checkpoint and resume like PPO: the steps after a resume log what
an uninterrupted run logs (fp32, fixed seed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "cpu_pipeline.yaml"
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
SHORT = [
    "labeller.demonstrations=96",
    "sft.max_steps=6",
    "sft.eval_interval=3",
    "sft.checkpoint.interval=3",
    "sft.checkpoint.resume=auto",
]


def sft(workdir: Path, *overrides: str) -> None:
    command = [str(RLHF_RAY), "sft", str(CONFIG), *SHORT, *overrides]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def logged(logs: Path) -> dict[int, dict[str, float]]:
    [path] = logs.glob("*-sft.metrics.jsonl")
    return {record["step"]: record for record in map(json.loads, path.read_text().splitlines())}


def test_sft_resumed_from_a_checkpoint_continues_the_same_run(tmp_path):
    sft(tmp_path)
    checkpoints = tmp_path / "outputs/cpu_pipeline/sft/checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_3", "step_6"]
    # A second run that starts from the step-3 checkpoint, logging elsewhere.
    sft(tmp_path, f"sft.checkpoint.resume={checkpoints / 'step_3'}", "logging.dir=resumed_logs")
    whole, resumed = logged(tmp_path / "outputs/cpu_pipeline/logs"), logged(tmp_path / "resumed_logs")
    assert sorted(resumed) == [4, 5, 6]
    for step in (4, 5, 6):
        for name in ("train/loss", "train/grad_norm", "train/lr"):
            assert resumed[step][name] == pytest.approx(whole[step][name], rel=1e-6, abs=1e-9), f"step {step}: {name}"
    assert resumed[6]["eval/loss"] == pytest.approx(whole[6]["eval/loss"], rel=1e-6)
    assert whole[6]["eval/loss"] < whole[0]["eval/loss"]
