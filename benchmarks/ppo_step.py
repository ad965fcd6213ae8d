"""The standard CPU benchmark of a PPO iteration: seconds per step, samples/s, generated tokens/s, each
phase's share against its floor (benchmarks/ppo_floor.py, in the run's precision), and the peak memory
of the run (PSS summed over every process: driver, role actors, engines, Ray's daemons), for GRPO (rule
reward, reference) and PPO (critic, reference, reward model), in fp32 and in bf16.

Shape: a Llama-style policy with vocab 1024, hidden 256, intermediate 688, 4 layers, 4 heads (random
init, seed 0); 32 prompts of 8-16 tokens x 4 samples = 128 responses of up to 32 new tokens per step;
one epoch, one optimizer step per iteration. The CPU configs' layout: every role and the engine in one
process, on-policy (``rollout.weight_sync=broadcast rollout.async_steps=1
algorithm.rollout_correction.mode=tis`` gives the engine a process of its own, a step ahead).
``fp32``: every role and engine in fp32; ``bf16``: the trained roles in bf16 with fp32 master weights,
the engines, the reference and the reward model in bf16. Figures are medians over steps 3-10; the
first step, which compiles, is printed apart.

The settings of a long run: every model compiled (``train.<role>.compile``, ``models.<role>.compile``,
``rollout.enforce_eager: false``) and every forward and update over the step's 128 samples at once.
``--eager`` runs as the CPU demo does: nothing compiled, micro-batches of 32.

    .venv/bin/python benchmarks/ppo_step.py [--steps 11] [--only grpo|ppo] [--precision fp32|bf16] [--eager] [overrides]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402
import ray  # noqa: E402
from ppo_floor import MODEL as FLOOR_MODEL  # noqa: E402
from ppo_floor import PRECISIONS, matmul_rate, phase_flops  # noqa: E402

from rlhf_ray.config import validate_config  # noqa: E402
from rlhf_ray.config.loading import apply_override  # noqa: E402
from rlhf_ray.data.records import token_ids  # noqa: E402
from rlhf_ray.data.synthetic import synthetic_prompts  # noqa: E402
from rlhf_ray.models.tokenizer import build_tokenizer  # noqa: E402
from rlhf_ray.trainers.ppo import train  # noqa: E402
from rlhf_ray.workers.base import available_cores  # noqa: E402

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
PRECISION_SETTINGS = {
    "fp32": {"precision": "fp32", "dtype": "float32"},
    "bf16": {"precision": "bf16", "dtype": "bfloat16"},
}
TARGETS = {("grpo", "bf16"): 0.8, ("ppo", "bf16"): 1.3, ("grpo", "fp32"): 1.5, ("ppo", "fp32"): 2.6}
PHASES = [
    "generate", "reward", "logprobs", "reference", "values", "advantages",
    "policy_update", "critic_update", "generate_ahead", "weight_sync",
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


def experiment(variant: str, precision: str, workdir: str, steps: int, eager: bool, overrides: list[str]) -> dict:
    dtype = PRECISION_SETTINGS[precision]["dtype"]
    compiled, micro_batch = not eager, 32 if eager else 128
    trained = {
        "precision": PRECISION_SETTINGS[precision]["precision"],
        "zero_stage": 2,
        "lr": 1e-4,
        "micro_batch_size": micro_batch,
        "global_batch_size": 128,
        "compile": compiled,
    }
    frozen = {"dtype": dtype, "compile": compiled}
    raw = {
        "name": f"bench_{variant}_{precision}",
        "models": {"tiny": {**MODEL, "output_dir": f"{workdir}/tiny"}, "reference": frozen, "reward": frozen},
        "data": {"train_path": write_prompts(workdir), "apply_chat_template": False,
                 "max_prompt_length": max(PROMPT_TOKENS), "prompts_per_step": 32},
        "rollout": {"samples_per_prompt": 4, "max_new_tokens": 32, "dtype": dtype, "enforce_eager": eager,
                    "temperature": 1.0, "weight_sync": "in_process"},
        "train": {"max_steps": steps, "forward_micro_batch_size": micro_batch, "policy": trained, "critic": trained},
        "resources": {"device": "cpu", "colocate": [["policy", "critic", "reference", "reward"]],
                      "shared_processes": True},
        "logging": {"dir": f"{workdir}/logs", "wandb": {"mode": "disabled"}, "sample_table_interval": 0},
        "checkpoint": {"dir": f"{workdir}/ckpt", "interval": 0, "resume": "never", "export_dir": None},
        **VARIANTS[variant],
    }  # fmt: skip
    for override in overrides:
        apply_override(raw, override)
    return raw


class PeakMemory:
    """The peak, over the run, of the proportional set size summed over this process and every process
    it started (Ray's daemons, the role actors and the engines are all its descendants), sampled every
    ``interval`` seconds. PSS counts a page shared by n processes as 1/n in each: the sum is the run's
    real footprint, where summed RSS would count shared libraries once per process. Reading every
    process's ``smaps_rollup`` costs the kernel a walk of its whole address space: sampled every 0.25 s
    it took a quarter of a core from the run it measures; the footprint is flat once the steps run."""

    def __init__(self, interval: float = 2.0):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, sum(_pss(p.pid) for p in [me, *me.children(recursive=True)]))


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:  # the process ended between listing and reading
        pass
    return 0


def measure(variant: str, precision: str, steps: int, eager: bool, overrides: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workdir, PeakMemory() as memory:
        cfg = validate_config(experiment(variant, precision, workdir, steps, eager, overrides))
        started = time.perf_counter()
        result = train(cfg)
        run_seconds = time.perf_counter() - started
        ray.shutdown()
        records = [json.loads(line) for line in result.metrics_file.read_text().splitlines()]
    # The last step also saves a checkpoint; steps 3..N-1 are the steady state.
    steady = [r for r in records if 3 <= r["step"] < steps]
    median = {key: statistics.median(r[key] for r in steady) for key in steady[0] if key.startswith("timing/")}
    samples = cfg.samples_per_step()
    tokens = statistics.median(r["rollout/response_length"] for r in steady) * samples
    median["samples_per_s"] = samples / median["timing/step"]
    median["tokens_per_s"] = tokens / median["timing/step"]
    median["peak_pss"] = memory.peak
    median["first_step"] = records[0]["timing/step"]
    median["run"] = run_seconds
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=11)
    parser.add_argument("--only", choices=sorted(VARIANTS))
    parser.add_argument("--precision", choices=sorted(PRECISION_SETTINGS))
    parser.add_argument("--eager", action="store_true", help="nothing compiled, micro-batches of 32 (the CPU demo's)")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides for every run")
    args = parser.parse_args()
    precisions = [p for p in PRECISION_SETTINGS if args.precision in (None, p)]
    rates = {p: matmul_rate(FLOOR_MODEL, available_cores(), PRECISIONS[p]) for p in precisions}
    runs = [(v, p) for p in precisions for v in VARIANTS if args.only in (None, v)]
    results = {run: measure(*run, args.steps, args.eager, args.overrides) for run in runs}
    work = phase_flops()
    settings = "eager, micro-batches of 32" if args.eager else "compiled, micro-batches of 128"
    print(f"\nmedian over steps 3-{args.steps - 1}; 128 samples per step; {settings}")
    for (variant, precision), m in results.items():
        step = m["timing/step"]
        print(
            f"\n{variant} {precision}: {step:.2f} s/step (target {TARGETS[variant, precision]:.1f}), "
            f"{m['samples_per_s']:.1f} samples/s, {m['tokens_per_s']:.0f} generated tokens/s, "
            f"peak PSS {m['peak_pss'] / 2**30:.2f} GiB; {precision} matmul {rates[precision] / 1e9:.0f} GFLOP/s; "
            f"first step {m['first_step']:.1f} s, whole run {m['run']:.0f} s"
        )
        floor = 0.0
        for phase in PHASES:
            if f"timing/{phase}" in m:
                seconds = m[f"timing/{phase}"]
                model_computes = phase != "reward" or VARIANTS[variant]["reward"]["source"] == "model"
                phase_floor = work.get(phase, 0.0) / rates[precision] if model_computes else 0.0
                floor += phase_floor
                print(f"  {phase:<14} {seconds:6.3f} s  {100 * seconds / step:5.1f}%   floor {phase_floor:6.3f} s")
        print(f"  {'floor':<14} {floor:6.3f} s  (the phases' work at the {precision} matmul rate)")


if __name__ == "__main__":
    main()
