"""Per-token KL estimators (Schulman, "Approximating KL Divergence") and the KL-coefficient controllers."""

from collections.abc import Callable

import torch

from rlhf_ray.algorithms._shapes import require_same_shape

# Each estimator maps log(pi / pi_ref) of a token sampled from pi to an estimate of KL(pi || pi_ref).
_ESTIMATORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "k1": lambda log_ratio: log_ratio,
    "k2": lambda log_ratio: 0.5 * log_ratio**2,
    # exp(-log_ratio) - 1 + log_ratio, with expm1 for precision near log_ratio = 0.
    "k3": lambda log_ratio: torch.expm1(-log_ratio) + log_ratio,
}
KL_ESTIMATORS = tuple(_ESTIMATORS)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the log-probs of sampled tokens."""
    if estimator not in _ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {list(KL_ESTIMATORS)}")
    require_same_shape(logp=logp, ref_logp=ref_logp)
    return _ESTIMATORS[estimator](logp - ref_logp)


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
