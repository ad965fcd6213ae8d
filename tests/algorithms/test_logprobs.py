import math

import pytest
import torch

from rlhf_ray.algorithms import logprobs_and_entropy_from_logits, logprobs_from_logits

B, T, V = 3, 4, 7


def reference_log_softmax(row):
    """log-softmax of a list of floats, shifted by the max so exp cannot overflow."""
    top = max(row)
    log_normalizer = top + math.log(sum(math.exp(value - top) for value in row))
    return [value - log_normalizer for value in row]


def reference_logprobs_and_entropy(logits, labels):
    logprobs, entropy = torch.zeros(B, T, dtype=torch.float64), torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            log_probs = reference_log_softmax(logits[b, t].double().tolist())
            logprobs[b, t] = log_probs[labels[b, t]]
            entropy[b, t] = -sum(math.exp(lp) * lp for lp in log_probs)
    return logprobs, entropy


@pytest.fixture
def labels(gen):
    return torch.randint(0, V, (B, T), generator=gen)


@pytest.mark.parametrize("offset", [0.0, 1e4])  # the offset would overflow a naive exp
def test_logprobs_and_entropy_match_loop(randn, labels, offset):
    logits = (randn(B, T, V, scale=3.0) + offset).float()
    expected_logprobs, expected_entropy = reference_logprobs_and_entropy(logits, labels)
    logprobs, entropy = logprobs_and_entropy_from_logits(logits, labels)
    torch.testing.assert_close(logprobs.double(), expected_logprobs, rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy.double(), expected_entropy, rtol=0, atol=1e-5)
    torch.testing.assert_close(logprobs_from_logits(logits, labels), logprobs, rtol=0, atol=0)


def test_half_precision_logits_are_computed_in_float32(randn, labels):
    logits = (randn(B, T, V, scale=3.0) + 50.0).bfloat16()
    expected_logprobs, expected_entropy = reference_logprobs_and_entropy(logits, labels)
    logprobs, entropy = logprobs_and_entropy_from_logits(logits, labels)
    assert logprobs.dtype == entropy.dtype == torch.float32
    torch.testing.assert_close(logprobs.double(), expected_logprobs, rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy.double(), expected_entropy, rtol=0, atol=1e-5)


def test_uniform_logits_have_maximal_entropy(labels):
    logits = torch.zeros(B, T, V, dtype=torch.float64)
    logprobs, entropy = logprobs_and_entropy_from_logits(logits, labels)
    torch.testing.assert_close(entropy, torch.full((B, T), math.log(V), dtype=torch.float64))
    torch.testing.assert_close(logprobs, torch.full((B, T), -math.log(V), dtype=torch.float64))


def test_labels_not_aligned_with_logits_are_rejected(randn, labels):
    for compute in (logprobs_from_logits, logprobs_and_entropy_from_logits):
        with pytest.raises(ValueError, match=r"expected logits \[B, T, V\] and labels \[B, T\]"):
            compute(randn(B, T + 1, V), labels)
