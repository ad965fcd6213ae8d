import math
import re
import statistics

import pytest
import torch

from rlhf_ray.algorithms import (
    ADVANTAGE_ESTIMATORS,
    AdvantageInput,
    get_advantage_estimator,
    register_advantage_estimator,
)

GROUP_ESTIMATORS = ["grpo", "dr_grpo", "rloo", "reinforce++_baseline"]
N = 4  # samples per prompt
B, T = 12, 6


@pytest.fixture
def make_input(randn, random_mask):
    """make_input(scattered=False, **overrides) -> AdvantageInput of B rows with a KL part in the rewards."""

    def make(scattered: bool = False, **overrides) -> AdvantageInput:
        mask = random_mask(B, T, scattered)
        scores = randn(B)
        kl_part = torch.where(mask, randn(B, T, scale=0.1), 0.0)
        fields = dict(
            scores=scores,
            kl_rewards=kl_part,
            mask=mask,
            values=randn(B, T).masked_fill(~mask, float("nan")),  # masked garbage must not leak
            samples_per_prompt=N,
            gamma=0.9,
            lam=0.8,
        )
        return AdvantageInput(**(fields | overrides))

    return make


def score_on_last_token(scores, mask):
    rewards = torch.zeros(mask.shape, dtype=scores.dtype)
    for i in range(mask.shape[0]):
        positions = [t for t in range(mask.shape[1]) if mask[i, t]]
        if positions:
            rewards[i, positions[-1]] = scores[i]
    return rewards


def token_rewards(inp):
    """The KL part plus the score on each row's last valid token, built independently of the estimator."""
    return inp.kl_rewards + score_on_last_token(inp.scores, inp.mask)


def valid_positions(mask, i):
    return [t for t in range(mask.shape[1]) if mask[i, t]]


def reference_returns_to_go(rewards, mask, gamma):
    returns = [[0.0] * T for _ in range(B)]
    for i in range(B):
        running = 0.0
        for t in reversed(valid_positions(mask, i)):
            running = rewards[i, t].item() + gamma * running
            returns[i][t] = running
    return returns


def reference_batch_whiten(per_token, mask, eps):
    values = [per_token[i][t] for i in range(B) for t in valid_positions(mask, i)]
    mean, std = statistics.fmean(values), math.sqrt(statistics.variance(values) + eps)
    return [[(per_token[i][t] - mean) / std if mask[i, t] else 0.0 for t in range(T)] for i in range(B)]


def per_row_on_valid_tokens(per_row, mask):
    return [[per_row[i] if mask[i, t] else 0.0 for t in range(T)] for i in range(B)]


def per_row_plus_kl_returns(per_row, inp):
    """A group estimator's advantage: its row's value on every valid token plus that token's
    return-to-go of the KL part of the rewards."""
    kl_returns = reference_returns_to_go(inp.kl_rewards, inp.mask, inp.gamma)
    return [[per_row[i] + kl_returns[i][t] if inp.mask[i, t] else 0.0 for t in range(T)] for i in range(B)]


def groups_of(scores):
    return [[scores[g * N + j].item() for j in range(N)] for g in range(B // N)]


def assert_matches(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-12)


def test_the_package_registers_exactly_the_six_estimators_with_what_each_needs():
    # Tests of plugins may have registered more, from modules of their own.
    built_in = {
        name for name in ADVANTAGE_ESTIMATORS if ADVANTAGE_ESTIMATORS[name].estimate.__module__.startswith("rlhf_ray.")
    }
    assert built_in == {"gae", "grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++_baseline"}
    assert {name for name in built_in if ADVANTAGE_ESTIMATORS[name].needs_critic} == {"gae"}
    assert {name for name in built_in if ADVANTAGE_ESTIMATORS[name].whitening} == {"gae"}
    assert {name for name in built_in if ADVANTAGE_ESTIMATORS[name].needs_groups} == set(GROUP_ESTIMATORS)
    assert all(ADVANTAGE_ESTIMATORS[name].kl_in_reward for name in built_in)


def test_unknown_estimator_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown advantage estimator 'ppo'.*'dr_grpo', 'gae', 'grpo'"):
        get_advantage_estimator("ppo")


def test_registering_a_taken_name_is_rejected():
    with pytest.raises(ValueError, match="'gae' is already registered"):
        register_advantage_estimator("gae")(lambda inp: None)
    assert ADVANTAGE_ESTIMATORS["gae"].estimate is get_advantage_estimator("gae")


@pytest.mark.parametrize("scattered", [False, True])
def test_gae_matches_loop(make_input, scattered):
    inp = make_input(scattered)
    rewards = token_rewards(inp)
    advantages, returns = [[0.0] * T for _ in range(B)], [[0.0] * T for _ in range(B)]
    for i in range(B):
        next_value, running = 0.0, 0.0
        for t in reversed(valid_positions(inp.mask, i)):
            value = inp.values[i, t].item()
            delta = rewards[i, t].item() + inp.gamma * next_value - value
            running = delta + inp.gamma * inp.lam * running
            advantages[i][t], returns[i][t] = running, running + value
            next_value = value

    out = get_advantage_estimator("gae")(inp)

    assert_matches(out.advantages, advantages)
    assert_matches(out.returns, returns)


def test_gae_with_gamma_and_lambda_one_is_returns_to_go_minus_values(make_input):
    inp = make_input(gamma=1.0, lam=1.0)
    rewards = token_rewards(inp)
    out = get_advantage_estimator("gae")(inp)
    for i in range(B):
        positions = valid_positions(inp.mask, i)
        for k, t in enumerate(positions):
            reward_to_go = sum(rewards[i, s].item() for s in positions[k:])
            assert out.advantages[i, t].item() == pytest.approx(reward_to_go - inp.values[i, t].item())
            assert out.returns[i, t].item() == pytest.approx(reward_to_go)


def test_gae_with_lambda_zero_is_one_step_td_error(make_input):
    inp = make_input(lam=0.0)
    rewards = token_rewards(inp)
    out = get_advantage_estimator("gae")(inp)
    for i in range(B):
        positions = valid_positions(inp.mask, i)
        for k, t in enumerate(positions):
            next_value = inp.values[i, positions[k + 1]].item() if k + 1 < len(positions) else 0.0
            td_error = rewards[i, t].item() + inp.gamma * next_value - inp.values[i, t].item()
            assert out.advantages[i, t].item() == pytest.approx(td_error)


def test_gae_needs_values(make_input):
    with pytest.raises(ValueError, match="'gae' needs critic values"):
        get_advantage_estimator("gae")(make_input(values=None))


def test_grpo_matches_loop(make_input):
    inp = make_input()
    per_row = [
        (score - statistics.fmean(group)) / (statistics.stdev(group) + inp.eps)
        for group in groups_of(inp.scores)
        for score in group
    ]
    out = get_advantage_estimator("grpo")(inp)
    assert_matches(out.advantages, per_row_plus_kl_returns(per_row, inp))
    assert_matches(out.returns, per_row_plus_kl_returns(per_row, inp))


def test_dr_grpo_matches_loop(make_input):
    inp = make_input()
    per_row = [score - statistics.fmean(group) for group in groups_of(inp.scores) for score in group]
    out = get_advantage_estimator("dr_grpo")(inp)
    assert_matches(out.advantages, per_row_plus_kl_returns(per_row, inp))


def test_rloo_matches_loop(make_input):
    inp = make_input()
    per_row = [
        score - statistics.fmean(group[:j] + group[j + 1 :])
        for group in groups_of(inp.scores)
        for j, score in enumerate(group)
    ]
    out = get_advantage_estimator("rloo")(inp)
    assert_matches(out.advantages, per_row_plus_kl_returns(per_row, inp))


def test_rloo_with_two_samples_is_the_score_difference():
    scores = torch.tensor([3.0, 1.0], dtype=torch.float64)
    mask = torch.ones(2, 2, dtype=torch.bool)
    inp = AdvantageInput(scores=scores, kl_rewards=torch.zeros(2, 2), mask=mask, values=None, samples_per_prompt=2)
    out = get_advantage_estimator("rloo")(inp)
    assert_matches(out.advantages, [[2.0, 2.0], [-2.0, -2.0]])


@pytest.mark.parametrize("scattered", [False, True])
def test_reinforce_plus_plus_matches_loop(make_input, scattered):
    inp = make_input(scattered)
    returns = reference_returns_to_go(token_rewards(inp), inp.mask, inp.gamma)
    out = get_advantage_estimator("reinforce++")(inp)
    assert_matches(out.returns, returns)
    assert_matches(out.advantages, reference_batch_whiten(returns, inp.mask, inp.eps))


@pytest.mark.parametrize("scattered", [False, True])
def test_reinforce_plus_plus_baseline_matches_loop(make_input, scattered):
    inp = make_input(scattered)
    centred = token_rewards(inp).clone()
    group_means = [statistics.fmean(group) for group in groups_of(inp.scores)]
    for i in range(B):
        positions = valid_positions(inp.mask, i)
        if positions:  # the score sits on the last token: swap it for the centred score
            centred[i, positions[-1]] += (inp.scores[i].item() - group_means[i // N]) - inp.scores[i].item()
    returns = reference_returns_to_go(centred, inp.mask, inp.gamma)

    out = get_advantage_estimator("reinforce++_baseline")(inp)

    assert_matches(out.returns, returns)
    assert_matches(out.advantages, reference_batch_whiten(returns, inp.mask, inp.eps))


def test_reinforce_plus_plus_baseline_without_kl_returns_the_centred_score_everywhere(make_input):
    with_kl = make_input(gamma=1.0)
    inp = AdvantageInput(
        scores=with_kl.scores,
        kl_rewards=torch.zeros_like(with_kl.kl_rewards),
        mask=with_kl.mask,
        values=None,
        samples_per_prompt=N,
    )
    group_means = [statistics.fmean(group) for group in groups_of(inp.scores)]
    per_row = [inp.scores[i].item() - group_means[i // N] for i in range(B)]
    out = get_advantage_estimator("reinforce++_baseline")(inp)
    assert_matches(out.returns, per_row_on_valid_tokens(per_row, inp.mask))


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_masked_positions_are_zero_and_empty_rows_get_nothing(make_input, name):
    inp = make_input(scattered=True)
    out = get_advantage_estimator(name)(inp)
    for tensor in (out.advantages, out.returns):
        assert torch.equal(tensor[~inp.mask], torch.zeros_like(tensor[~inp.mask]))
        assert not tensor.isnan().any()
    assert inp.mask[0].sum() == 0 and inp.mask[1].sum() == 1  # the fixture's edge rows are really there


@pytest.mark.parametrize("name", GROUP_ESTIMATORS)
def test_group_estimators_reject_single_sample_groups(make_input, name):
    with pytest.raises(ValueError, match=rf"'{re.escape(name)}'.*samples_per_prompt >= 2, got 1"):
        get_advantage_estimator(name)(make_input(samples_per_prompt=1))


@pytest.mark.parametrize("name", GROUP_ESTIMATORS)
def test_group_estimators_reject_batch_not_divisible_by_group_size(make_input, name):
    with pytest.raises(
        ValueError, match=rf"'{re.escape(name)}': batch size 12 is not divisible by samples_per_prompt 5"
    ):
        get_advantage_estimator(name)(make_input(samples_per_prompt=5))


def test_input_with_mismatched_shapes_is_rejected(randn):
    with pytest.raises(ValueError, match="one shape"):
        AdvantageInput(
            scores=randn(2), kl_rewards=randn(2, 3), mask=torch.ones(2, 4), values=None, samples_per_prompt=2
        )
