"""Time the rollout engines: generation tokens/s, 3-turn conversations/s, and weight-sync ms per MiB.
Prints tables.

Generation: vLLM and HF engines, 1 and 2 of them, sampling at temperature 1 from random prompts.
Conversations: 3 policy turns with the multi-turn demo's simulated user (``rlhf_ray.environments.instructed``)
on the synthetic prompts, vLLM with and without prefix caching, and the HF engine.
Weight sync: a 1-rank policy under ZeRO 2 and 3 to one vLLM engine, by broadcast and object store.
Both for two tiny models built offline, on a local Ray cluster.

    .venv/bin/python benchmarks/rollout.py [--prompts 64] [--new-tokens 64] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
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
from rlhf_ray.config.placement_plan import plan_placement, plan_rollout  # noqa: E402
from rlhf_ray.data.prompts import load_prompts  # noqa: E402
from rlhf_ray.data.samples import Sample  # noqa: E402
from rlhf_ray.distributed.placement import release, reserve  # noqa: E402
from rlhf_ray.distributed.role_group import RoleGroup  # noqa: E402
from rlhf_ray.engines.rollout import SamplingSpec  # noqa: E402
from rlhf_ray.models import load_tokenizer  # noqa: E402
from rlhf_ray.models.paths import resolve_model_paths  # noqa: E402
from rlhf_ray.trainers.conversations import Conversations  # noqa: E402
from rlhf_ray.workers import PolicyWorker  # noqa: E402
from rlhf_ray.workers.rollout_group import RolloutGroup  # noqa: E402

MODELS = {
    "demo (h256 L4)": {"hidden_size": 256, "intermediate_size": 688, "num_layers": 4, "num_heads": 4},
    "larger (h512 L8)": {"hidden_size": 512, "intermediate_size": 1376, "num_layers": 8, "num_heads": 8},
}
VOCAB, MIN_PROMPT_TOKENS, MAX_PROMPT_TOKENS = 1024, 8, 16
CPU = DeviceProfile("cpu")
CONVERSATION = {
    "max_turns": 3,
    "environment": "rlhf_ray.environments.instructed:InstructingUser",
    "max_environment_tokens": 32,
}


def config(
    model: dict, tiny_dir: str, new_tokens: int, engine: str, engines: int, stage: int, weight_sync: str, **rollout
):
    return validate_config(
        {
            "seed": 0,
            "models": {"tiny": {**model, "vocab_size": VOCAB, "output_dir": tiny_dir}},
            "data": {"prompts_per_step": 8, "max_prompt_length": 32},
            "rollout": {
                "engine": engine,
                "num_engines": engines,
                "dtype": "float32",
                "temperature": 1.0,
                "max_new_tokens": new_tokens,
                "enforce_eager": True,
                "cpu_kv_cache_bytes": 256 * 2**20,
                "weight_sync": weight_sync,
                **rollout,
            },
            "algorithm": {"advantage_estimator": "reinforce++", "kl": {"coef": 0}},
            "reward": {"source": "function", "function": "rlhf_ray.rewards.math:exact_match"},
            "train": {
                "policy": {"precision": "fp32", "zero_stage": stage, "micro_batch_size": 8, "global_batch_size": 8}
            },
            "resources": {"device": "cpu"},
        }
    )


def random_prompts(count: int, seed: int = 0) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(MIN_PROMPT_TOKENS, MAX_PROMPT_TOKENS + 1, (count,), generator=gen)
    return [torch.randint(3, VOCAB, (int(n),), generator=gen).tolist() for n in lengths]


def timed_calls(fn, repeats: int) -> list[tuple[float, object]]:
    """(seconds, result) of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    calls = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        calls.append((time.perf_counter() - start, result))
    return calls


def start(cfg, roles: list[str]):
    """Reserve the placement; start the policy when ``roles`` has it, and the rollout engines (from the
    policy's folder)."""
    slots = reserve([*plan_placement(cfg, CPU, roles), plan_rollout(cfg, CPU)], timeout_s=300)
    policy = RoleGroup("policy", PolicyWorker, slots["policy"], cfg, CPU) if "policy" in roles else None
    return slots, policy, RolloutGroup(cfg, CPU, slots["rollout"], resolve_model_paths(cfg).policy, policy)


def measure_generation(cfg, prompts: list[list[int]], repeats: int) -> tuple[float, int, int]:
    """Median generated tokens/s, and the tokens and EOS-ended samples of the last call."""
    slots, _, rollout = start(cfg, [])
    try:
        sampling = SamplingSpec.from_config(cfg.rollout, seed=0)
        calls = timed_calls(lambda: rollout.generate(prompts, sampling, 0), repeats)
    finally:
        rollout.shutdown()
        release(slots)
    rate = statistics.median(counts(result)[0] / secs for secs, result in calls)
    return rate, *counts(calls[-1][1])


def counts(result: list[list[Sample]]) -> tuple[int, int]:
    """Generated tokens, and samples ended by EOS, of one ``generate`` call."""
    samples = [sample for per_prompt in result for sample in per_prompt]
    return sum(len(s.token_ids) for s in samples), sum(s.finish_reason == "stop" for s in samples)


def measure_conversations(cfg, count: int, repeats: int) -> tuple[float, float, int, int]:
    """Median conversations/s and policy tokens/s of ``count`` conversations, and the policy tokens and
    turns of the last call."""
    tokenizer = load_tokenizer(resolve_model_paths(cfg).policy, "left")
    prompts = load_prompts(None, cfg.data, tokenizer, cfg.seed).items[:count]
    conversations = Conversations(cfg.rollout, tokenizer)
    slots, _, rollout = start(cfg, [])
    try:
        # A new seed for every call: no call finds the previous one's conversations in the prefix cache.
        seeds = itertools.count()
        calls = timed_calls(
            lambda: conversations(
                prompts,
                SamplingSpec.from_config(cfg.rollout, seed=next(seeds)),
                lambda p, s: rollout.generate(p, s, 0),
            ),
            repeats,
        )
    finally:
        rollout.shutdown()
        release(slots)
    policy_tokens = [sum(sum(s.policy_mask) for ss in result for s in ss) for _, result in calls]
    rate = statistics.median(count / secs for secs, _ in calls)
    token_rate = statistics.median(tokens / secs for tokens, (secs, _) in zip(policy_tokens, calls, strict=True))
    turns = sum(s.turns for ss in calls[-1][1] for s in ss)
    return rate, token_rate, policy_tokens[-1], turns


def measure_sync(cfg, repeats: int) -> tuple[float, float]:
    """MiB of float32 parameters, and the median seconds of a sync after a warm-up one."""
    slots, policy, rollout = start(cfg, ["policy"])
    try:
        policy.setup(resolve_model_paths(cfg).policy, 1000).result()
        specs = ray.get(policy.actors[0].weight_specs.remote(cfg.rollout.dtype))
        versions = itertools.count(1)
        calls = timed_calls(lambda: rollout.sync_from(next(versions)), repeats)
    finally:
        policy.shutdown()
        rollout.shutdown()
        release(slots)
    return sum(spec.nbytes for spec in specs) / 2**20, statistics.median(secs for secs, _ in calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--turn-tokens", type=int, default=16, help="longest policy turn in a conversation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="only the demo model")
    args = parser.parse_args()
    models = dict(itertools.islice(MODELS.items(), 1 if args.quick else None))
    prompts = random_prompts(args.prompts)
    ray.init(address="local", num_cpus=6, include_dashboard=False, log_to_driver=False)
    generation, conversations, sync = [], [], []
    with tempfile.TemporaryDirectory() as tiny_dir:
        for name, model in models.items():
            for engine, engines in itertools.product(("vllm", "hf"), (1, 2)):
                cfg = config(model, tiny_dir, args.new_tokens, engine, engines, 2, "broadcast")
                generation.append((name, engine, engines, *measure_generation(cfg, prompts, args.repeats)))
                print(f"  measured {name}, {engines} {engine} engine(s)", flush=True)
            for engine, caching in (("vllm", True), ("vllm", False), ("hf", False)):
                cfg = config(
                    model, tiny_dir, args.turn_tokens, engine, 1, 2, "broadcast", enable_prefix_caching=caching,
                    **CONVERSATION,
                )  # fmt: skip
                conversations.append((name, engine, caching, *measure_conversations(cfg, args.prompts, args.repeats)))
                print(f"  measured {name}, 3-turn conversations on {engine}", flush=True)
            for weight_sync, stage in itertools.product(("broadcast", "object_store"), (2, 3)):
                cfg = config(model, tiny_dir, args.new_tokens, "vllm", 1, stage, weight_sync)
                sync.append((name, stage, weight_sync, *measure_sync(cfg, args.repeats)))
                print(f"  measured {name}, ZeRO-{stage} {weight_sync} sync", flush=True)
    ray.shutdown()
    print(
        f"\n{args.prompts} prompts of {MIN_PROMPT_TOKENS}-{MAX_PROMPT_TOKENS} tokens, up to {args.new_tokens} "
        f"new tokens (EOS may end a sample early), temperature 1, fp32, median of {args.repeats}"
    )
    print(f"{'model':<18} {'engine':>6} {'engines':>7} {'tokens':>7} {'EOS-ended':>9} {'tokens/s':>9}")
    for name, engine, engines, rate, tokens, stopped in generation:
        print(f"{name:<18} {engine:>6} {engines:>7} {tokens:>7} {stopped:>9} {rate:>9.1f}")
    print(
        f"\n{args.prompts} conversations of 3 policy turns (up to {args.turn_tokens} tokens each) with the "
        f"demo's simulated user, 1 engine, fp32, median of {args.repeats}"
    )
    print(f"{'model':<18} {'engine':>6} {'prefix cache':>12} {'turns':>6} {'tokens':>7} {'conv/s':>7} {'tokens/s':>9}")
    for name, engine, caching, rate, token_rate, tokens, turns in conversations:
        cache = "on" if caching else "off"
        print(f"{name:<18} {engine:>6} {cache:>12} {turns:>6} {tokens:>7} {rate:>7.2f} {token_rate:>9.1f}")
    print(f"\nweight sync from a 1-rank policy to 1 vLLM engine, float32, median of {args.repeats} after a warm-up")
    print(f"{'model':<18} {'ZeRO':>4} {'path':>12} {'MiB':>6} {'sync ms':>8} {'ms/MiB':>7}")
    for name, stage, weight_sync, mib, secs in sync:
        print(f"{name:<18} {stage:>4} {weight_sync:>12} {mib:>6.1f} {secs * 1e3:>8.1f} {secs * 1e3 / mib:>7.2f}")


if __name__ == "__main__":
    main()
