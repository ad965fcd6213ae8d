import math

import pytest
import torch

from rlhf_ray.algorithms import AdaptiveKLController, FixedKLController, kl_estimate

REFERENCE_KL = {
    "k1": lambda logp, ref: logp - ref,
    "k2": lambda logp, ref: 0.5 * (logp - ref) ** 2,
    "k3": lambda logp, ref: math.exp(ref - logp) - (ref - logp) - 1,
}


@pytest.mark.parametrize("estimator", sorted(REFERENCE_KL))
def test_kl_estimate_matches_per_token_formula(randn, estimator):
    logp, ref_logp = randn(4, 6) - 2.0, randn(4, 6) - 2.0
    kl = kl_estimate(logp, ref_logp, estimator)
    for i in range(4):
        for t in range(6):
            expected = REFERENCE_KL[estimator](logp[i, t].item(), ref_logp[i, t].item())
            assert kl[i, t].item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_k3_is_never_negative_and_zero_when_policies_agree(randn):
    logp = randn(5, 7, scale=3.0)
    assert (kl_estimate(logp, randn(5, 7, scale=3.0), "k3") >= 0).all()
    assert torch.equal(kl_estimate(logp, logp, "k3"), torch.zeros_like(logp))


def test_unknown_kl_estimator_lists_valid_ones(randn):
    with pytest.raises(ValueError, match=r"unknown KL estimator 'k4'.*'k1', 'k2', 'k3'"):
        kl_estimate(randn(2, 2), randn(2, 2), "k4")


def test_fixed_controller_ignores_updates():
    controller = FixedKLController(0.05)
    controller.update(current_kl=100.0, n_steps=512)
    assert controller.value == 0.05


@pytest.mark.parametrize(
    ("current_kl", "expected"),
    [
        (12.0, 0.1 * (1 + 0.2 * 256 / 10_000)),  # error 1.0 clipped to +0.2: moves up
        (6.6, 0.1 * (1 + 0.1 * 256 / 10_000)),  # error +0.1, inside the clip range
        (3.0, 0.1 * (1 - 0.2 * 256 / 10_000)),  # error -0.5 clipped to -0.2: moves down
        (6.0, 0.1),  # on target: stays
    ],
)
def test_adaptive_controller_moves_towards_target(current_kl, expected):
    controller = AdaptiveKLController(init_coef=0.1, target=6.0, horizon=10_000)
    controller.update(torch.tensor(current_kl, dtype=torch.float64), n_steps=256)
    assert controller.value == pytest.approx(expected, rel=1e-12)


def test_adaptive_controller_hand_computed_numbers():
    controller = AdaptiveKLController(init_coef=0.2, target=1.0, horizon=100)
    controller.update(1.1, n_steps=10)
    assert controller.value == pytest.approx(0.202)  # 0.2 * (1 + 0.1 * 10 / 100)
    controller.update(0.0, n_steps=10)
    assert controller.value == pytest.approx(0.19796)  # 0.202 * (1 - 0.2 * 10 / 100)


@pytest.mark.parametrize(
    "make", [lambda: FixedKLController(0.3), lambda: AdaptiveKLController(0.3, target=2.0, horizon=50)]
)
def test_controller_state_round_trips(make):
    trained = make()
    trained.update(10.0, n_steps=20)
    trained.value += 0.125  # make the state distinguishable from a fresh controller
    resumed = make()
    resumed.load_state_dict(trained.state_dict())
    assert resumed.value == trained.value
    with pytest.raises(ValueError, match="'value'"):
        resumed.load_state_dict({})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"init_coef": 0.0, "target": 6.0, "horizon": 10.0}, "init_coef"),
        ({"init_coef": 0.1, "target": 0.0, "horizon": 10.0}, "target"),
        ({"init_coef": 0.1, "target": 6.0, "horizon": -1.0}, "horizon"),
    ],
)
def test_adaptive_controller_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveKLController(**kwargs)


def test_fixed_controller_rejects_negative_coef():
    with pytest.raises(ValueError, match="KL coefficient must be >= 0"):
        FixedKLController(-0.1)
