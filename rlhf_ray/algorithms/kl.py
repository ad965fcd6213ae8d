"""Per-token KL estimators (Schulman, "Approximating KL Divergence") and the KL-coefficient controllers."""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhf_ray.algorithms._shapes import require_same_shape
from rlhf_ray.algorithms.registry import Registry

KLEstimate = Callable[[torch.Tensor], torch.Tensor]
"""Maps log(pi / pi_ref) of a token sampled from pi to an estimate of KL(pi || pi_ref)."""


@dataclass(frozen=True)
class KLEstimatorSpec:
    estimate: KLEstimate
    usable_as_loss: bool
    """Whether its gradient restrains the policy when added to the loss (k1's expected gradient is zero)."""


KL_ESTIMATORS: Registry[KLEstimatorSpec] = Registry("KL estimator")


def register_kl_estimator(name: str, *, usable_as_loss: bool = True) -> Callable[[KLEstimate], KLEstimate]:
    """Register the decorated function as the KL estimator ``name`` (``algorithm.kl.estimator``)."""

    def register(estimate: KLEstimate) -> KLEstimate:
        KL_ESTIMATORS.add(name, KLEstimatorSpec(estimate, usable_as_loss))
        return estimate

    return register


@register_kl_estimator("k1", usable_as_loss=False)
def k1(log_ratio: torch.Tensor) -> torch.Tensor:
    return log_ratio


@register_kl_estimator("k2")
def k2(log_ratio: torch.Tensor) -> torch.Tensor:
    return 0.5 * log_ratio**2


@register_kl_estimator("k3")
def k3(log_ratio: torch.Tensor) -> torch.Tensor:
    """exp(-log_ratio) - 1 + log_ratio, with expm1 for precision near log_ratio = 0."""
    return torch.expm1(-log_ratio) + log_ratio


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the log-probs of sampled tokens."""
    estimate = KL_ESTIMATORS[estimator].estimate
    require_same_shape(logp=logp, ref_logp=ref_logp)
    return estimate(logp - ref_logp)


class FixedKLController:
    """A KL coefficient that never changes."""

    def __init__(self, coef: float):
        if coef < 0:
            raise ValueError(f"KL coefficient must be >= 0, got {coef}")
        self.value = float(coef)

    def update(self, current_kl: float | torch.Tensor, n_steps: int) -> None:
        """Does nothing: the coefficient is fixed."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = _value_from_state(state)


class AdaptiveKLController:
    """Moves the KL coefficient towards a target KL, as in Ziegler et al. 2019 ("Fine-Tuning LMs from Human
    Preferences"): the proportional error is clipped to +-0.2 and applied at a rate of n_steps / horizon."""

    def __init__(self, init_coef: float, target: float, horizon: float):
        if init_coef <= 0:
            raise ValueError(f"adaptive KL init_coef must be > 0 (a zero coefficient can never grow), got {init_coef}")
        if target <= 0:
            raise ValueError(f"adaptive KL target must be > 0, got {target}")
        if horizon <= 0:
            raise ValueError(f"adaptive KL horizon must be > 0, got {horizon}")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float | torch.Tensor, n_steps: int) -> None:
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = _value_from_state(state)


def _value_from_state(state: dict[str, float]) -> float:
    if "value" not in state:
        raise ValueError(f"KL controller state needs a 'value' entry, got keys {sorted(state)}")
    return float(state["value"])
