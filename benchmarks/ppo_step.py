"""The standard CPU benchmark of a PPO iteration: seconds per step, samples/s, generated tokens/s and
each phase's share, for GRPO (rule reward, reference) and PPO (critic, reference, reward model).

Shape: a Llama-style policy with vocab 1024, hidden 256, intermediate 688, 4 layers, 4 heads (random
init, seed 0, fp32); 32 prompts of 8-16 tokens x 4 samples = 128 responses of up to 32 new tokens per step; one epoch
in micro-batches of 32; one optimizer step per iteration. Figures are medians over steps 3-10.

    .venv/bin/python benchmarks/ppo_step.py [--steps 10] [--only grpo|ppo] [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray  # noqa: E402

from rlhf_ray.config import validate_config  # noqa: E402
from rlhf_ray.config.loading import apply_override  # noqa: E402
from rlhf_ray.data.records import token_ids  # noqa: E402
from rlhf_ray.data.synthetic import synthetic_prompts  # noqa: E402
from rlhf_ray.models.tokenizer import build_tokenizer  # noqa: E402
from rlhf_ray.trainers.ppo import train  # noqa: E402

PROMPT_TOKENS = range(8, 17)
MODEL = {"vocab_size": 1024, "hidden_size": 256, "intermediate_size": 688, "num_layers": 4, "num_heads": 4, "seed": 0}
VARIANTS = {
    "grpo": {
        "algorithm": {"advantage_estimator": "grpo", "kl": {"coef": 0.01, "estimator": "k3", "placement": "loss"}},
        "reward": {"source": "function", "function": "rlhf_ray.rewards.demo:concise"},
    },
    "ppo": {
        "algorithm": {"advantage_estimator": "gae", "kl": {"coef": 0.01, "placement": "reward"}},
        "reward": {"source": "model"},
    },
}
PHASES = [
    "generate", "reward", "logprobs", "reference", "values", "advantages",
    "policy_update", "critic_update", "weight_sync",
]  # fmt: skip


def write_prompts(workdir: str) -> str:
    """The synthetic prompts of 8-16 tokens (no chat template), as a JSONL file."""
    tokenizer = build_tokenizer(MODEL["vocab_size"], MODEL["seed"])  # the one the tiny build writes
    path = f"{workdir}/prompts.jsonl"
    with open(path, "w") as out:
        for text in synthetic_prompts(seed=0):
            if len(token_ids(tokenizer, text)) in PROMPT_TOKENS:
                out.write(json.dumps({"prompt": text}) + "\n")
    return path


def experiment(variant: str, workdir: str, steps: int, overrides: list[str]) -> dict:
    trained = {"precision": "fp32", "zero_stage": 2, "lr": 1e-4, "micro_batch_size": 32, "global_batch_size": 128}
    raw = {
        "name": f"bench_{variant}",
        "models": {"tiny": {**MODEL, "output_dir": f"{workdir}/tiny"}, "reference": {"dtype": "float32"},
                   "reward": {"dtype": "float32"}},
        "data": {"train_path": write_prompts(workdir), "apply_chat_template": False,
                 "max_prompt_length": max(PROMPT_TOKENS), "prompts_per_step": 32},
        "rollout": {"samples_per_prompt": 4, "max_new_tokens": 32, "dtype": "float32", "enforce_eager": True,
                    "temperature": 1.0},
        "train": {"max_steps": steps, "forward_micro_batch_size": 32, "policy": trained, "critic": trained},
        "resources": {"device": "cpu"},
        "logging": {"dir": f"{workdir}/logs", "wandb": {"mode": "disabled"}, "sample_table_interval": 0},
        "checkpoint": {"dir": f"{workdir}/ckpt", "interval": 0, "resume": "never", "export_dir": None},
        **VARIANTS[variant],
    }  # fmt: skip
    for override in overrides:
        apply_override(raw, override)
    return raw


def measure(variant: str, steps: int, overrides: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workdir:
        cfg = validate_config(experiment(variant, workdir, steps, overrides))
        result = train(cfg)
        ray.shutdown()
        records = [json.loads(line) for line in result.metrics_file.read_text().splitlines()]
    # The last step also saves a checkpoint; steps 3..N-1 are the steady state.
    steady = [r for r in records if 3 <= r["step"] < steps]
    median = {key: statistics.median(r[key] for r in steady) for key in steady[0] if key.startswith("timing/")}
    samples = cfg.samples_per_step()
    tokens = statistics.median(r["rollout/response_length"] for r in steady) * samples
    median["samples_per_s"] = samples / median["timing/step"]
    median["tokens_per_s"] = tokens / median["timing/step"]
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=11)
    parser.add_argument("--only", choices=sorted(VARIANTS))
    parser.add_argument("overrides", nargs="*", help="dotted config overrides for both variants")
    args = parser.parse_args()
    targets = {"grpo": 1.0, "ppo": 1.7}
    results = {v: measure(v, args.steps, args.overrides) for v in VARIANTS if args.only in (None, v)}
    print(f"\nmedian over steps 3-{args.steps - 1}; 128 samples per step")
    for variant, m in results.items():
        step = m["timing/step"]
        print(
            f"\n{variant}: {step:.2f} s/step (target {targets[variant]:.1f}), {m['samples_per_s']:.1f} samples/s, "
            f"{m['tokens_per_s']:.0f} generated tokens/s"
        )
        for phase in PHASES:
            if f"timing/{phase}" in m:
                seconds = m[f"timing/{phase}"]
                print(f"  {phase:<14} {seconds:6.3f} s  {100 * seconds / step:5.1f}%")


if __name__ == "__main__":
    main()
