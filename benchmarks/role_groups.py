"""Time a policy role group: log-prob forwards and PPO updates, per sample, over model sizes, ranks and
ZeRO stages, on a local Ray cluster. Prints a table.

    .venv/bin/python benchmarks/role_groups.py [--samples 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray  # noqa: E402
import torch  # noqa: E402

from rlhf_ray.config import validate_config  # noqa: E402
from rlhf_ray.config.device import DeviceProfile  # noqa: E402
from rlhf_ray.config.placement_plan import plan_placement  # noqa: E402
from rlhf_ray.data import pack_sequences  # noqa: E402
from rlhf_ray.distributed.placement import release, reserve  # noqa: E402
from rlhf_ray.distributed.role_group import RoleGroup  # noqa: E402
from rlhf_ray.models.paths import resolve_model_paths  # noqa: E402
from rlhf_ray.workers import PolicyWorker  # noqa: E402

MODELS = {
    "demo (h256 L4)": {"hidden_size": 256, "intermediate_size": 688, "num_layers": 4, "num_heads": 4},
    "larger (h512 L8)": {"hidden_size": 512, "intermediate_size": 1376, "num_layers": 8, "num_heads": 8},
}
PROMPT_TOKENS, RESPONSE_TOKENS = 16, 32


def config(model: dict, tiny_dir: str, ranks: int, stage: int, samples: int):
    return validate_config(
        {
            "models": {"tiny": {**model, "vocab_size": 1024, "output_dir": tiny_dir}},
            "data": {"prompts_per_step": samples, "max_prompt_length": PROMPT_TOKENS},
            "rollout": {"samples_per_prompt": 1, "max_new_tokens": RESPONSE_TOKENS},
            "algorithm": {"advantage_estimator": "reinforce++", "kl": {"coef": 0}},
            "reward": {"source": "function", "function": "rlhf_ray.rewards.math:exact_match"},
            "train": {
                "forward_micro_batch_size": 16,
                "policy": {
                    "precision": "fp32",
                    "zero_stage": stage,
                    "micro_batch_size": 8,
                    "global_batch_size": samples,
                },
            },
            "resources": {"device": "cpu", "policy": {"gpus_per_node": ranks}},
        }
    )


def fixed_batch(samples: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    prompts = torch.randint(3, 1024, (samples, PROMPT_TOKENS), generator=gen).tolist()
    responses = torch.randint(3, 1024, (samples, RESPONSE_TOKENS), generator=gen).tolist()
    batch = pack_sequences(prompts, responses, pad_token_id=0)
    advantages = torch.randn(batch.response_mask.shape, generator=gen)
    return batch.with_fields(old_logprobs=torch.zeros(batch.response_mask.shape), advantages=advantages)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(cfg, samples: int, repeats: int) -> tuple[float, float]:
    paths = resolve_model_paths(cfg)
    cpu = DeviceProfile("cpu")
    slots = reserve(plan_placement(cfg, cpu, ["policy"]), timeout_s=120)
    group = RoleGroup("policy", PolicyWorker, slots["policy"], cfg, cpu)
    try:
        group.setup(paths.policy, 1000).result()
        batch = fixed_batch(samples)
        forward = timed(lambda: group.logprobs(batch).result(), repeats)
        update = timed(lambda: group.update(batch, kl_coef=0.0).result(), repeats)
    finally:
        group.shutdown()
        release(slots)
    return forward / samples, update / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as tiny_dir:
        for name, model in MODELS.items():
            for ranks in (1, 2):
                for stage in (2, 3):
                    forward, update = measure(
                        config(model, tiny_dir, ranks, stage, args.samples), args.samples, args.repeats
                    )
                    rows.append((name, ranks, stage, forward * 1e3, update * 1e3))
                    print(f"  measured {name}, {ranks} rank(s), ZeRO-{stage}", flush=True)
    ray.shutdown()
    print(f"\n{args.samples} samples of {PROMPT_TOKENS}+{RESPONSE_TOKENS} tokens, fp32, median of {args.repeats}")
    print(f"{'model':<18} {'ranks':>5} {'ZeRO':>4} {'logprobs ms/sample':>19} {'update ms/sample':>17}")
    for name, ranks, stage, forward, update in rows:
        print(f"{name:<18} {ranks:>5} {stage:>4} {forward:>19.2f} {update:>17.2f}")


if __name__ == "__main__":
    main()
