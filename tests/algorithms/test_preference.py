import math

import pytest
import torch

from rlhf_ray.algorithms import bradley_terry_loss, dpo_loss

N = 16


def minus_log_sigmoid(x):
    return math.log1p(math.exp(-x))


@pytest.mark.parametrize("margin", [None, 0.5, "per_pair"])
def test_bradley_terry_loss_matches_loop(randn, margin):
    chosen, rejected = randn(N), randn(N)
    rejected[0] = chosen[0]  # a tie is not a correct ranking
    margins = randn(N).abs() if margin == "per_pair" else margin
    margin_of = (lambda i: 0.0) if margin is None else (lambda i: margins[i].item() if margin == "per_pair" else margin)

    loss, accuracy = bradley_terry_loss(chosen, rejected, margins)

    expected_loss = sum(minus_log_sigmoid(chosen[i].item() - rejected[i].item() - margin_of(i)) for i in range(N)) / N
    expected_accuracy = sum(chosen[i].item() > rejected[i].item() for i in range(N)) / N
    assert loss.item() == pytest.approx(expected_loss)
    assert accuracy.item() == pytest.approx(expected_accuracy)


@pytest.fixture
def sequence_logps(randn):
    """Four [N] tensors of summed response log-probs: policy chosen/rejected, reference chosen/rejected."""
    return tuple(randn(N, scale=5.0) - 40.0 for _ in range(4))


def reference_logits(sequence_logps, i):
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = (logps[i].item() for logps in sequence_logps)
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_dpo_sigmoid_loss_matches_loop(sequence_logps, label_smoothing):
    beta = 0.2
    expected = 0.0
    for i in range(N):
        scaled = beta * reference_logits(sequence_logps, i)
        expected += (1 - label_smoothing) * minus_log_sigmoid(scaled) + label_smoothing * minus_log_sigmoid(-scaled)

    loss, _, _ = dpo_loss(*sequence_logps, beta=beta, label_smoothing=label_smoothing)

    assert loss.item() == pytest.approx(expected / N)


def test_ipo_loss_matches_loop(sequence_logps):
    beta = 0.2
    expected = sum((reference_logits(sequence_logps, i) - 1 / (2 * beta)) ** 2 for i in range(N)) / N
    loss, _, _ = dpo_loss(*sequence_logps, beta=beta, loss_type="ipo")
    assert loss.item() == pytest.approx(expected)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_rewards_are_scaled_detached_log_ratios(sequence_logps, loss_type):
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = (
        logps.clone().requires_grad_(True) for logps in sequence_logps
    )
    loss, chosen_rewards, rejected_rewards = dpo_loss(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.3, loss_type=loss_type
    )
    for i in range(N):
        assert chosen_rewards[i].item() == pytest.approx(0.3 * (policy_chosen[i].item() - ref_chosen[i].item()))
        assert rejected_rewards[i].item() == pytest.approx(0.3 * (policy_rejected[i].item() - ref_rejected[i].item()))
    assert loss.requires_grad and not chosen_rewards.requires_grad and not rejected_rewards.requires_grad


def test_dpo_loss_at_equal_policy_and_reference_is_log_two(sequence_logps):
    policy_chosen, policy_rejected, _, _ = sequence_logps
    loss, _, _ = dpo_loss(policy_chosen, policy_rejected, policy_chosen, policy_rejected)
    assert loss.item() == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_type": "hinge"}, r"unknown DPO loss_type 'hinge'.*'sigmoid', 'ipo'"),
        ({"beta": 0.0}, "beta must be > 0"),
        ({"label_smoothing": 0.5}, r"label_smoothing must be in \[0, 0.5\)"),
        ({"loss_type": "ipo", "label_smoothing": 0.1}, "label_smoothing applies only to loss_type='sigmoid'"),
    ],
)
def test_bad_dpo_settings_are_rejected(sequence_logps, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dpo_loss(*sequence_logps, **kwargs)


def test_mismatched_pair_shapes_are_rejected():
    with pytest.raises(ValueError, match="one shape"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))
