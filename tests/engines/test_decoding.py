"""The batched decoder's sampling: which tokens top-k and top-p keep, and drawing from the softmax of
what is kept."""

import math

import torch

from rlhf_ray.engines.decoding import _keep_top_k_top_p, _sample, _sampling_logits

PROBS = [0.5, 0.3, 0.15, 0.05]
LOGITS = torch.tensor([[math.log(p) for p in PROBS]])


def draw(logits, generators, temperature: float, top_p: float, top_k: int) -> torch.Tensor:
    return _sample(_sampling_logits(logits, temperature, top_p, top_k), generators, temperature)


def kept(top_k: int, top_p: float) -> list[bool]:
    return torch.isfinite(_keep_top_k_top_p(LOGITS, top_k, top_p))[0].tolist()


def test_top_k_and_top_p_keep_the_smallest_sets_asked_for():
    assert kept(0, 1.0) == [True, True, True, True]
    assert kept(3, 1.0) == [True, True, True, False]
    assert kept(0, 0.8) == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    assert kept(0, 0.81) == [True, True, True, False]
    assert kept(0, 0.4) == [True, False, False, False]  # the most likely token always stays
    assert kept(1, 0.9) == [True, False, False, False]


def test_kept_logits_keep_their_values_in_every_row_order():
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.0], [3.0, 0.0, 1.0, 2.0]])
    out = _keep_top_k_top_p(logits, 2, 1.0)
    assert out.tolist() == [[-math.inf, 2.0, -math.inf, 1.0], [3.0, -math.inf, -math.inf, 2.0]]


def test_sampling_draws_from_the_softmax():
    rows = 20000
    generators = [torch.Generator().manual_seed(seed) for seed in range(rows)]
    tokens = draw(LOGITS.expand(rows, -1), generators, temperature=1.0, top_p=1.0, top_k=0)
    frequencies = torch.bincount(tokens, minlength=4).float() / rows
    assert torch.allclose(frequencies, torch.tensor(PROBS), atol=0.015), frequencies


def test_a_token_top_k_removes_is_never_drawn():
    rows = 4000
    generators = [torch.Generator().manual_seed(seed) for seed in range(rows)]
    tokens = draw(LOGITS.expand(rows, -1), generators, temperature=1.0, top_p=1.0, top_k=2)
    frequencies = torch.bincount(tokens, minlength=4).float() / rows
    assert frequencies[2:].sum() == 0
    assert abs(frequencies[0].item() - 0.5 / 0.8) < 0.03


def test_temperature_sharpens_and_zero_is_greedy():
    rows = 4000
    generators = [torch.Generator().manual_seed(seed) for seed in range(rows)]
    cold = draw(LOGITS.expand(rows, -1), generators, temperature=0.25, top_p=1.0, top_k=0)
    # At temperature 1/4 the probabilities go as p^4: 0.5^4 / sum = 0.87 for the first token.
    expected = PROBS[0] ** 4 / sum(p**4 for p in PROBS)
    assert abs((cold == 0).float().mean().item() - expected) < 0.02
    assert draw(LOGITS.expand(3, -1), generators[:3], temperature=0.0, top_p=1.0, top_k=0).tolist() == [0, 0, 0]


def test_the_sampling_distribution_is_tempered_and_renormalised_after_truncation():
    """The decoder's log-probs are the log-softmax of these logits: the distribution sampled from."""
    tempered = _sampling_logits(LOGITS, temperature=0.5, top_p=1.0, top_k=0).log_softmax(-1).exp()[0]
    expected = [p**2 / sum(q**2 for q in PROBS) for p in PROBS]
    assert torch.allclose(tempered, torch.tensor(expected), atol=1e-6)
    truncated = _sampling_logits(LOGITS, temperature=1.0, top_p=1.0, top_k=2).log_softmax(-1).exp()[0]
    assert torch.allclose(truncated, torch.tensor([0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0]), atol=1e-6)
    greedy = _sampling_logits(LOGITS, temperature=0.0, top_p=0.5, top_k=1).log_softmax(-1).exp()[0]
    assert torch.allclose(greedy, torch.tensor(PROBS), atol=1e-6)
