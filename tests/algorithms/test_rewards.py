import pytest
import torch

from rlhf_ray.algorithms import kl_estimate, kl_shaped_rewards


@pytest.mark.parametrize("scattered", [False, True])
@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_shaped_rewards_match_loop(randn, random_mask, scattered, estimator):
    mask = random_mask(6, 5, scattered)
    scores, logp, ref_logp = randn(6), randn(6, 5) - 1.0, randn(6, 5) - 1.0
    kl_coef = 0.3

    rewards, kl = kl_shaped_rewards(scores, logp, ref_logp, mask, kl_coef, estimator)

    per_token_kl = kl_estimate(logp, ref_logp, estimator)
    for i in range(6):
        positions = [t for t in range(5) if mask[i, t]]
        for t in range(5):
            expected_kl = per_token_kl[i, t].item() if t in positions else 0.0
            expected_reward = -kl_coef * expected_kl
            if positions and t == positions[-1]:
                expected_reward += scores[i].item()
            assert kl[i, t].item() == pytest.approx(expected_kl)
            assert rewards[i, t].item() == pytest.approx(expected_reward)


def test_empty_row_gets_no_score_and_one_token_row_gets_score_minus_kl():
    mask = torch.tensor([[False, False, False], [True, False, False]])
    scores = torch.tensor([5.0, 2.0], dtype=torch.float64)
    logp = torch.full((2, 3), -1.0, dtype=torch.float64)
    ref_logp = torch.full((2, 3), -1.5, dtype=torch.float64)

    rewards, kl = kl_shaped_rewards(scores, logp, ref_logp, mask, kl_coef=0.1, estimator="k1")

    expected = torch.tensor([[0.0, 0.0, 0.0], [2.0 - 0.1 * 0.5, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(rewards, expected)
    torch.testing.assert_close(kl, torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64))


def test_scores_of_wrong_shape_are_rejected(randn):
    mask = torch.ones(3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"expected scores \[B\]"):
        kl_shaped_rewards(randn(3, 1), randn(3, 4), randn(3, 4), mask, 0.1, "k1")
