"""The least time a step of the standard CPU benchmark (benchmarks/ppo_step.py) can take on this machine,
in fp32 and in bf16: every phase's floating-point work, divided by the matrix-multiply rate this machine
reaches in that precision on the benchmark model's own layer shapes with all its cores. Real steps also
pay for attention, norms, activations, the optimizer, sampling and the engines' bookkeeping, so they
cannot beat this.

    .venv/bin/python benchmarks/ppo_floor.py
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlhf_ray.workers.base import available_cores

MODEL = LlamaConfig(vocab_size=1024, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4)
SEQUENCES = 128  # 32 prompts x 4 samples
PROMPT_TOKENS = 12  # the benchmark's prompts are 8-16 tokens, about 12 on average
RESPONSE_TOKENS = 32
MICRO_BATCH_TOKENS = 32 * (16 + RESPONSE_TOKENS)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def forward_flops_per_token(config: LlamaConfig, context: int, lm_head: bool) -> float:
    """Multiply-adds x 2 of one token through the model: every linear layer, and attention over
    ``context`` earlier tokens on average. Without ``lm_head``: a one-output head (critic, reward model)."""
    model = LlamaForCausalLM(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    if not lm_head:
        linear -= config.vocab_size * config.hidden_size - config.hidden_size
    attention = 2 * config.num_hidden_layers * config.hidden_size * context  # scores and weighted sum
    return 2.0 * (linear + attention)


def matmul_rate(config: LlamaConfig, threads: int, dtype: torch.dtype, repeats: int = 20) -> float:
    """FLOP/s of matrix multiplies in ``dtype`` shaped like the model's layers over one micro-batch."""
    torch.set_num_threads(threads)
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    shapes = [(h, h)] * 4 + [(h, i)] * 2 + [(i, h), (h, v)]  # q k v o, gate up, down, LM head
    pairs = [(torch.randn(MICRO_BATCH_TOKENS, k, dtype=dtype), torch.randn(k, n, dtype=dtype)) for k, n in shapes]
    flops = sum(2.0 * MICRO_BATCH_TOKENS * k * n for k, n in shapes)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for a, b in pairs:
            a @ b
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times[2:])


def phase_flops() -> dict[str, float]:
    """The floating-point work of each phase of a step (the names ppo_step.py times)."""
    tokens = SEQUENCES * (PROMPT_TOKENS + RESPONSE_TOKENS)
    context = (PROMPT_TOKENS + RESPONSE_TOKENS) // 2
    policy = forward_flops_per_token(MODEL, context, lm_head=True) * tokens
    scorer = forward_flops_per_token(MODEL, context, lm_head=False) * tokens
    # Generation takes every token through the model once (prefill and decode); an update is a forward
    # and a backward, which does twice the forward's work.
    return {
        "generate": policy,
        "logprobs": policy,
        "reference": policy,
        "values": scorer,
        "reward": scorer,
        "policy_update": 3 * policy,
        "critic_update": 3 * scorer,
    }


def variant_flops(variant: str, recompute_logprobs: bool) -> float:
    """The work of a step: GRPO generates, takes the reference forward and updates the policy (its
    reward is a function); PPO adds the reward model's and the critic's forwards and the critic update.
    ``recompute_logprobs`` adds the policy's own forward (``algorithm.old_logprobs: recompute``)."""
    work = phase_flops()
    phases = ["generate", "reference", "policy_update"] + (["logprobs"] if recompute_logprobs else [])
    if variant == "ppo":
        phases += ["reward", "values", "critic_update"]
    return sum(work[phase] for phase in phases)


def main() -> None:
    cores = available_cores()
    rates = {name: matmul_rate(MODEL, cores, dtype) for name, dtype in PRECISIONS.items()}
    tokens = SEQUENCES * (PROMPT_TOKENS + RESPONSE_TOKENS)
    print(f"{SEQUENCES} sequences x {PROMPT_TOKENS} + {RESPONSE_TOKENS} tokens = {tokens} tokens per step")
    for precision, rate in rates.items():
        print(f"\n{cores} cores, {precision} matmul at the model's shapes: {rate / 1e9:.0f} GFLOP/s")
        for name, flops in phase_flops().items():
            print(f"  {name:<14} {flops / 1e9:6.1f} GFLOP  >= {flops / rate:5.3f} s")
        for variant in ("grpo", "ppo"):
            for recompute in (False, True):
                seconds = variant_flops(variant, recompute) / rate
                print(f"  {variant} ({'recomputed' if recompute else 'engine'} old log-probs): >= {seconds:.2f} s/step")


if __name__ == "__main__":
    main()
