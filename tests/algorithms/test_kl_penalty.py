import pytest
import torch

from rlhf_ray.algorithms import AdvantageInput, kl_estimate, kl_penalty_rewards


@pytest.mark.parametrize("scattered", [False, True])
@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_penalty_rewards_match_loop(randn, random_mask, scattered, estimator):
    mask = random_mask(6, 5, scattered)
    logp, ref_logp = randn(6, 5) - 1.0, randn(6, 5) - 1.0
    kl_coef = 0.3

    rewards, kl = kl_penalty_rewards(logp, ref_logp, mask, kl_coef, estimator)

    per_token_kl = kl_estimate(logp, ref_logp, estimator)
    for i in range(6):
        for t in range(5):
            expected_kl = per_token_kl[i, t].item() if mask[i, t] else 0.0
            assert kl[i, t].item() == pytest.approx(expected_kl)
            assert rewards[i, t].item() == pytest.approx(-kl_coef * expected_kl)


def test_token_rewards_put_the_score_on_the_last_token_and_empty_rows_get_none():
    mask = torch.tensor([[False, False, False], [True, False, False], [True, True, False]])
    scores = torch.tensor([5.0, 2.0, -1.0], dtype=torch.float64)
    logp = torch.full((3, 3), -1.0, dtype=torch.float64)
    kl_rewards, kl = kl_penalty_rewards(logp, logp - 0.5, mask, kl_coef=0.1, estimator="k1")
    inp = AdvantageInput(scores=scores, kl_rewards=kl_rewards, mask=mask, values=None, samples_per_prompt=1)

    expected = [[0.0, 0.0, 0.0], [2.0 - 0.05, 0.0, 0.0], [-0.05, -1.0 - 0.05, 0.0]]
    torch.testing.assert_close(inp.token_rewards(), torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(kl, 0.5 * mask.double())
    centred = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    expected_centred = [[0.0, 0.0, 0.0], [1.0 - 0.05, 0.0, 0.0], [-0.05, 3.0 - 0.05, 0.0]]
    torch.testing.assert_close(inp.token_rewards(centred), torch.tensor(expected_centred, dtype=torch.float64))


def test_scores_of_wrong_shape_are_rejected(randn):
    mask = torch.ones(3, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"expected scores \[B\]"):
        AdvantageInput(scores=randn(3, 1), kl_rewards=randn(3, 4), mask=mask, values=None, samples_per_prompt=1)
