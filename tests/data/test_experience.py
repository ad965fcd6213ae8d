"""From a scored batch to advantages: every estimator takes the KL where the config puts it; from the
policy's log-probs before the update, the KL to the reference and the rollout correction's weights."""

import pytest
import torch

from rlhf_ray.algorithms import ADVANTAGE_ESTIMATORS, AdvantageInput, get_advantage_estimator, kl_penalty_rewards
from rlhf_ray.config import validate_config
from rlhf_ray.config.checks import check_config
from rlhf_ray.data import pack_sequences
from rlhf_ray.data.experience import compute_advantages, old_policy_terms

N, PROMPTS, T = 4, 3, 6
KL_COEF = 0.2


def config(estimator: str, placement: str, **algorithm):
    return validate_config(
        {
            "models": {"tiny": {"hidden_size": 64, "num_heads": 2, "intermediate_size": 128, "num_layers": 1}},
            "rollout": {"samples_per_prompt": N, "max_new_tokens": T},
            "data": {"prompts_per_step": PROMPTS},
            "algorithm": {
                "advantage_estimator": estimator,
                "kl": {"coef": KL_COEF, "estimator": "k3", "placement": placement},
                **algorithm,
            },
            "train": {
                "policy": {"micro_batch_size": 2, "global_batch_size": 12},
                "critic": {"micro_batch_size": 2, "global_batch_size": 12},
            },
            "resources": {"device": "cpu"},
        }
    )


@pytest.fixture
def scored(randn):
    """A batch of PROMPTS x N responses of 1..T tokens with scores, values and old / reference log-probs."""
    lengths = [1 + (i * 5) % T for i in range(PROMPTS * N)]
    batch = pack_sequences([[5, 6]] * len(lengths), [[7] * n for n in lengths], pad_token_id=0)
    mask = batch.response_mask.bool()
    old = torch.where(mask, randn(len(lengths), T) - 2.0, 0.0)
    return batch.with_fields(
        scores=randn(len(lengths)),
        old_logprobs=old,
        rollout_logprobs=torch.where(mask, old + randn(len(lengths), T, scale=0.3), 0.0),
        ref_logprobs=torch.where(mask, old + randn(len(lengths), T, scale=0.5), 0.0),
        values=torch.where(mask, randn(len(lengths), T), 0.0),
    )


@pytest.mark.parametrize("placement", ["reward", "loss"])
@pytest.mark.parametrize("estimator", sorted(ADVANTAGE_ESTIMATORS))
def test_every_estimator_takes_the_kl_where_the_config_puts_it(scored, estimator, placement):
    """With the KL in the reward the advantages are the estimator's on the KL-shaped rewards; with the KL
    as a loss term they ignore the reference (the policy update adds it). No pair is rejected."""
    cfg = config(estimator, placement)
    assert check_config(cfg) == []

    with_kl, _ = compute_advantages(scored, cfg.algorithm, KL_COEF, N)
    without_kl, _ = compute_advantages(scored.with_fields(ref_logprobs=scored.old_logprobs), cfg.algorithm, KL_COEF, N)

    mask = scored.response_mask
    kl_rewards, kl = kl_penalty_rewards(scored.old_logprobs, scored.ref_logprobs, mask, KL_COEF, "k3")
    expected_kl_rewards = kl_rewards if placement == "reward" else torch.zeros_like(kl_rewards)
    inp = AdvantageInput(scored.scores, expected_kl_rewards, mask, scored.values, N, gamma=1.0, lam=0.95)
    expected = get_advantage_estimator(estimator)(inp)
    torch.testing.assert_close(with_kl.returns, expected.returns)
    if placement == "reward":
        assert not torch.allclose(with_kl.advantages, without_kl.advantages)
    else:
        torch.testing.assert_close(with_kl.advantages, without_kl.advantages)
    _, metrics = old_policy_terms(scored, cfg.algorithm)
    assert metrics["train/kl"] == pytest.approx((kl * mask).sum(-1).mean().item())
    assert metrics["train/kl_per_token"] == pytest.approx(((kl * mask).sum() / mask.sum()).item())
    assert metrics["train/kl"] > metrics["train/kl_per_token"] > 0


def test_group_advantages_add_the_return_to_go_of_the_kl_penalty(scored):
    """GRPO with the KL in the reward: a token's advantage is its group-normalised score minus the
    coefficient times the KL of this and every later token of its response."""
    cfg = config("grpo", "reward")
    out, _ = compute_advantages(scored, cfg.algorithm, KL_COEF, N)
    no_kl, _ = compute_advantages(scored.with_fields(ref_logprobs=scored.old_logprobs), cfg.algorithm, KL_COEF, N)
    _, kl = kl_penalty_rewards(scored.old_logprobs, scored.ref_logprobs, scored.response_mask, KL_COEF, "k3")
    for i in range(len(scored)):
        length = int(scored.response_mask[i].sum())
        for t in range(length):
            expected = no_kl.advantages[i, t].item() - KL_COEF * kl[i, t:length].sum().item()
            assert out.advantages[i, t].item() == pytest.approx(expected, abs=1e-6)


def test_the_advantages_need_the_old_log_probs_only_for_a_kl_in_the_reward(scored):
    """With the KL in the loss (or no reference) the update may give the old log-probs afterwards."""
    without_old = scored.with_fields(old_logprobs=None)
    for placement in ("loss", "reward"):
        algo = config("gae", placement).algorithm
        out, _ = compute_advantages(without_old.with_fields(ref_logprobs=None), algo, KL_COEF, N)
        torch.testing.assert_close(
            out.advantages, compute_advantages(scored.with_fields(ref_logprobs=None), algo, KL_COEF, N)[0].advantages
        )
    out, _ = compute_advantages(without_old, config("gae", "loss").algorithm, KL_COEF, N)
    torch.testing.assert_close(
        out.advantages, compute_advantages(scored, config("gae", "loss").algorithm, KL_COEF, N)[0].advantages
    )
    with pytest.raises(ValueError, match="the KL in the reward needs the policy's old_logprobs"):
        compute_advantages(without_old, config("gae", "reward").algorithm, KL_COEF, N)


def test_a_rollout_correction_sets_the_importance_weights_and_reports_them(scored):
    cfg = config("grpo", "reward", rollout_correction={"mode": "tis", "tis_cap": 1.5})
    out, metrics = old_policy_terms(scored, cfg.algorithm)
    ratio = (scored.old_logprobs - scored.rollout_logprobs).exp()
    expected = torch.where(scored.response_mask.bool(), ratio.clamp(max=1.5), 0.0)
    torch.testing.assert_close(out.is_weights, expected)
    assert {"rollout/is_weight_mean", "rollout/is_weight_max", "rollout/is_masked_fraction"} <= set(metrics)
    assert metrics["rollout/is_weight_max"] == pytest.approx(1.5)
    plain, plain_metrics = old_policy_terms(scored, config("grpo", "reward").algorithm)
    assert plain.is_weights is None and "rollout/is_weight_mean" not in plain_metrics
