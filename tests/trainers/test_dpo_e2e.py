"""`rlhf-ray pipeline` with `pipeline.method=dpo` end to end on the CPU config: SFT, then DPO of the SFT
policy on the simulated labellers' preference pairs (Ray, DeepSpeed on gloo), judged by the labellers'
hidden gold reward of the policy's greedy answers to held-out prompts."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_ray.rewards.gold import cheerful
from rlhf_ray.trainers.sampling import Sampler, load_prompt_file, sampling_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "cpu_pipeline.yaml"
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
OUT = Path("outputs/cpu_pipeline")
GOLD_GAIN = 0.5
"""How much DPO must raise the mean gold reward (from -1 to 1) of the greedy answers."""


def dpo_pipeline(workdir: Path) -> subprocess.CompletedProcess:
    command = [str(RLHF_RAY), "pipeline", str(CONFIG), "pipeline.method=dpo", "logging.wandb.group=dpo-test"]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def metrics(workdir: Path, job: str) -> dict[int, dict[str, float]]:
    [path] = (workdir / OUT / "logs").glob(f"*-{job}.metrics.jsonl")
    return {record["step"]: record for record in map(json.loads, path.read_text().splitlines())}


def greedy_gold_reward(model: Path, prompts_file: Path) -> float:
    """Mean gold reward of the model's greedy answers to the prompts of ``prompts_file``."""
    cfg = sampling_config(str(model), ["rollout.engine=hf", "rollout.max_new_tokens=24"])
    sampler = Sampler(cfg, str(model))
    prompts = load_prompt_file(str(prompts_file), cfg)
    answers = [responses[0].text for responses in sampler.respond(prompts, sampler.greedy())]
    sampler.close()
    return sum(cheerful([], answers, [])) / len(answers)


def held_out_prompts(workdir: Path) -> Path:
    """The distinct prompts of the held-out preference pairs, one row each."""
    rows = map(json.loads, (workdir / OUT / "labels/preferences_eval.jsonl").read_text().splitlines())
    path = workdir / "held_out_prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in dict.fromkeys(row["prompt"] for row in rows)))
    return path


def test_dpo_raises_the_gold_reward_of_the_sft_policys_greedy_answers(tmp_path):
    result = dpo_pipeline(tmp_path)

    dpo = metrics(tmp_path, "dpo")
    assert dpo[0]["eval/loss"] == pytest.approx(math.log(2), abs=1e-5)  # the policy starts as its reference
    assert dpo[0]["eval/reward_margin"] == pytest.approx(0, abs=1e-5)
    assert dpo[1]["train/loss"] == pytest.approx(math.log(2), abs=1e-5)
    final = dpo[max(dpo)]
    assert final["eval/reward_accuracy"] >= 0.9, final
    assert final["eval/reward_margin"] > 0 and final["eval/loss"] < 0.5 * math.log(2), final
    assert final["train/logps_chosen"] > final["train/logps_rejected"], final
    assert not list((tmp_path / OUT / "logs").glob("*-rm.metrics.jsonl")), "a DPO pipeline trains no reward model"
    assert "DPO: trained" in result.stdout and "policy exported to outputs/cpu_pipeline/dpo/model" in result.stdout

    prompts = held_out_prompts(tmp_path)
    sft_gold = greedy_gold_reward(tmp_path / OUT / "sft/model", prompts)
    dpo_gold = greedy_gold_reward(tmp_path / OUT / "dpo/model", prompts)
    print(f"gold reward of greedy answers: SFT {sft_gold:.3f} -> DPO {dpo_gold:.3f}")
    assert dpo_gold > sft_gold + GOLD_GAIN, f"gold reward {sft_gold:.3f} -> {dpo_gold:.3f}"

    again = dpo_pipeline(tmp_path)
    assert "sft: skipped" in again.stderr and "dpo: skipped" in again.stderr
    assert "DPO: trained" not in again.stdout
