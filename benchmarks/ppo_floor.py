"""The least time a step of the standard CPU benchmark (benchmarks/ppo_step.py) can take on this machine:
every phase's floating-point work, divided by the fp32 matrix-multiply rate this machine reaches on the
benchmark model's own layer shapes with all its cores. Real steps also pay for attention, norms,
activations, the optimizer, sampling and the engines' bookkeeping, so they cannot beat this.

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
TARGETS = {"grpo": 1.0, "ppo": 1.7}


def forward_flops_per_token(config: LlamaConfig, context: int, lm_head: bool) -> float:
    """Multiply-adds x 2 of one token through the model: every linear layer, and attention over
    ``context`` earlier tokens on average. Without ``lm_head``: a one-output head (critic, reward model)."""
    model = LlamaForCausalLM(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    if not lm_head:
        linear -= config.vocab_size * config.hidden_size - config.hidden_size
    attention = 2 * config.num_hidden_layers * config.hidden_size * context  # scores and weighted sum
    return 2.0 * (linear + attention)


def matmul_rate(config: LlamaConfig, threads: int, repeats: int = 20) -> float:
    """FLOP/s of fp32 matrix multiplies shaped like the model's layers over one micro-batch."""
    torch.set_num_threads(threads)
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    shapes = [(h, h)] * 4 + [(h, i)] * 2 + [(i, h), (h, v)]  # q k v o, gate up, down, LM head
    pairs = [(torch.randn(MICRO_BATCH_TOKENS, k), torch.randn(k, n)) for k, n in shapes]
    flops = sum(2.0 * MICRO_BATCH_TOKENS * k * n for k, n in shapes)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for a, b in pairs:
            a @ b
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times[2:])


def main() -> None:
    cores = available_cores()
    rate = matmul_rate(MODEL, cores)
    tokens = SEQUENCES * (PROMPT_TOKENS + RESPONSE_TOKENS)
    context = (PROMPT_TOKENS + RESPONSE_TOKENS) // 2
    policy = forward_flops_per_token(MODEL, context, lm_head=True) * tokens
    scorer = forward_flops_per_token(MODEL, context, lm_head=False) * tokens
    # Generation takes every token through the model once (prefill and decode); an update is a forward
    # and a backward, which does twice the forward's work.
    phases = {
        "generate": policy,
        "policy forward": policy,  # reference, or the policy's own log-probs
        "critic forward": scorer,  # values, or the reward model's scores
        "policy update": 3 * policy,
        "critic update": 3 * scorer,
    }
    print(f"{cores} cores, fp32 matmul at the model's shapes: {rate / 1e9:.0f} GFLOP/s")
    print(f"{SEQUENCES} sequences x {PROMPT_TOKENS} + {RESPONSE_TOKENS} tokens = {tokens} tokens per step")
    for name, flops in phases.items():
        print(f"  {name:<14} {flops / 1e9:6.1f} GFLOP  >= {flops / rate:5.2f} s")
    floors = {
        # GRPO taking the engines' log-probs: generate, the reference forward, the policy update.
        "grpo": phases["generate"] + phases["policy forward"] + phases["policy update"],
        # PPO likewise, with the reward model's and the critic's forwards and the critic update.
        "ppo": phases["generate"]
        + phases["policy forward"]
        + 2 * phases["critic forward"]
        + phases["policy update"]
        + phases["critic update"],
    }
    for variant, flops in floors.items():
        print(f"{variant}: at least {flops / rate:.2f} s/step (target {TARGETS[variant]:.1f})")


if __name__ == "__main__":
    main()
