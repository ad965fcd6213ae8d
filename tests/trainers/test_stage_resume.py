"""The SFT and DPO stages (and so the reward-model stage, on the same loop) checkpoint and resume like PPO:
the steps after a resume log what an uninterrupted run logs (fp32, fixed seed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "cpu_pipeline.yaml"
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
OUT = Path("outputs/cpu_pipeline")


def short(section: str) -> list[str]:
    """Six steps of ``section``, evaluated and checkpointed every three, resuming when it can."""
    return [
        "labeller.demonstrations=96",
        f"{section}.max_steps=6",
        f"{section}.eval_interval=3",
        f"{section}.checkpoint.interval=3",
        f"{section}.checkpoint.resume=auto",
    ]


def run(workdir: Path, command: str, section: str, *overrides: str) -> None:
    result = subprocess.run(
        [str(RLHF_RAY), command, str(CONFIG), *short(section), *overrides],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def logged(logs: Path, job: str) -> dict[int, dict[str, float]]:
    [path] = logs.glob(f"*-{job}.metrics.jsonl")
    return {record["step"]: record for record in map(json.loads, path.read_text().splitlines())}


def resumed_at_step_3(workdir: Path, command: str, section: str) -> tuple[dict, dict]:
    """The metrics of a whole six-step run, and of a second run resumed from its step-3 checkpoint."""
    run(workdir, command, section)
    checkpoints = workdir / OUT / section / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_3", "step_6"]
    # A second run that starts from the step-3 checkpoint, logging elsewhere.
    run(workdir, command, section, f"{section}.checkpoint.resume={checkpoints / 'step_3'}", "logging.dir=resumed_logs")
    whole, resumed = logged(workdir / OUT / "logs", command), logged(workdir / "resumed_logs", command)
    assert sorted(resumed) == [4, 5, 6]
    for step in (4, 5, 6):
        for name in ("train/loss", "train/grad_norm", "train/lr"):
            assert resumed[step][name] == pytest.approx(whole[step][name], rel=1e-6, abs=1e-9), f"step {step}: {name}"
    assert resumed[6]["eval/loss"] == pytest.approx(whole[6]["eval/loss"], rel=1e-6)
    return whole, resumed


def test_sft_resumed_from_a_checkpoint_continues_the_same_run(tmp_path):
    whole, _ = resumed_at_step_3(tmp_path, "sft", "sft")
    assert whole[6]["eval/loss"] < whole[0]["eval/loss"]


def test_dpo_resumed_from_a_checkpoint_continues_the_same_run_against_the_same_reference(tmp_path):
    run(tmp_path, "sft", "sft")
    whole, resumed = resumed_at_step_3(tmp_path, "dpo", "dpo")
    # The resumed run's reference is the starting model again, not the checkpoint's policy.
    assert resumed[6]["eval/reward_margin"] == pytest.approx(whole[6]["eval/reward_margin"], rel=1e-5)
    assert whole[6]["eval/loss"] < whole[0]["eval/loss"]
