"""Judging a model against a baseline and against a verifier: win rate and pass@k."""

from __future__ import annotations

import math

import torch

from rlhf_ray.algorithms._shapes import require_same_shape


def win_rate(scores: torch.Tensor, baseline_scores: torch.Tensor) -> float:
    """The share of prompts where the model's score beats the baseline's, a tie counting half; both [P]."""
    require_same_shape(scores=scores, baseline_scores=baseline_scores)
    if scores.dim() != 1 or not len(scores):
        raise ValueError(f"win_rate needs one score per prompt, [P] with P > 0, got {tuple(scores.shape)}")
    wins = (scores > baseline_scores).double() + 0.5 * (scores == baseline_scores).double()
    return float(wins.mean())


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of the chance that at least one of k samples passes, from n samples of which c
    passed (Chen et al. 2021): 1 - C(n - c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(passed: torch.Tensor, k: int) -> float:
    """pass@k averaged over prompts; ``passed`` is [P, n]: whether each of a prompt's n samples passed."""
    if passed.dim() != 2 or not passed.shape[0]:
        raise ValueError(f"pass@k needs [P, n] pass flags with P > 0, got {tuple(passed.shape)}")
    n = passed.shape[1]
    return sum(pass_at_k(n, int(c), k) for c in passed.sum(-1)) / passed.shape[0]


def pass_at_k_values(n: int) -> list[int]:
    """The k worth reporting for n samples per prompt: 1, the powers of two below n, and n."""
    return sorted({2**i for i in range(n.bit_length()) if 2**i < n} | {n})
