"""The RL objective (advantages, KL, the PPO loss) and the reward source."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rlhf_ray.algorithms.rollout_correction import ROLLOUT_CORRECTION_LEVELS, ROLLOUT_CORRECTION_MODES
from rlhf_ray.config.schema.base import NonNegativeFloat, PositiveInt, Section


class KLConfig(Section):
    """The KL leash to the reference policy."""

    coef: NonNegativeFloat = 0.01
    """KL coefficient (initial value when adaptive); 0 removes the reference role."""
    estimator: str = "k1"
    """Per-token KL estimator: Schulman's ``k1``, ``k2``, ``k3``, or one registered by an
    ``algorithm.plugins`` module. As a loss term k1 has zero expected gradient, so ``placement: loss``
    takes k2 or k3."""
    placement: Literal["reward", "loss"] = "reward"
    """Subtract the KL from the per-token reward (InstructGPT), or add it to the policy loss (GRPO).
    In the reward, every advantage estimator takes it: GAE and REINFORCE++ through the token rewards;
    ``grpo``, ``dr_grpo`` and ``rloo`` add each token's return-to-go of the KL penalty to the
    group advantage of its sequence."""
    controller: Literal["fixed", "adaptive"] = "fixed"
    """Keep the coefficient fixed, or adapt it towards ``target`` (Ziegler et al. 2019)."""
    target: Annotated[float, Field(gt=0.0)] | None = None
    """Target KL of the adaptive controller, per sequence: the sum over a response's tokens, as
    logged in ``train/kl`` (not the per-token ``train/kl_per_token``)."""
    horizon: PositiveInt = 10000
    """Adaptive controller horizon, in samples."""


RolloutCorrectionMode = Literal[("none", *ROLLOUT_CORRECTION_MODES)]
RolloutCorrectionLevel = Literal[ROLLOUT_CORRECTION_LEVELS]


class RolloutCorrectionConfig(Section):
    """Correction for rollouts sampled by a policy other than the trainer's: the engines compute other
    probabilities for the same weights (bf16 engines, other kernels, top-k / top-p truncation).
    The importance ratio is pi_old / pi_rollout, from the recomputed old log-probs and the engines'."""

    mode: RolloutCorrectionMode = "none"
    """``tis``: truncated importance sampling, the policy loss of each token weighted by
    min(ratio, ``tis_cap``); ``mis``: masked importance sampling, tokens whose ratio leaves
    [``mis_low``, ``mis_high``] get weight 0; ``none``: no correction."""
    level: RolloutCorrectionLevel = "token"
    """``token``: each token's own ratio; ``sequence``: the product of a response's token ratios,
    one weight (or one mask) for all its tokens."""
    tis_cap: Annotated[float, Field(gt=0.0)] = 2.0
    """Upper cap of the truncated importance weight."""
    mis_low: NonNegativeFloat = 0.5
    """Lowest ratio ``mis`` keeps."""
    mis_high: Annotated[float, Field(gt=0.0)] = 2.0
    """Highest ratio ``mis`` keeps."""


class AlgorithmConfig(Section):
    """The RL objective: advantages, KL, and the PPO loss."""

    plugins: list[str] = Field(default_factory=list)
    """Modules imported before the config is checked (and in every role actor), which register their
    own advantage estimators, loss aggregations or KL estimators with the decorators of
    ``rlhf_ray.algorithms``; the fields below then take their names."""
    advantage_estimator: str = "gae"
    """``gae`` (with a critic), ``grpo``, ``dr_grpo``, ``rloo``, ``reinforce++``,
    ``reinforce++_baseline`` (critic-free: no critic role is created), or a registered one."""
    gamma: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """Discount factor."""
    lam: Annotated[float, Field(ge=0.0, le=1.0)] = 0.95
    """GAE lambda."""
    kl: KLConfig = Field(default_factory=KLConfig)
    """KL penalty to the reference policy."""
    clip_low: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    """PPO ratio clip below 1 (1 - clip_low)."""
    clip_high: Annotated[float, Field(gt=0.0)] = 0.2
    """PPO ratio clip above 1 (1 + clip_high); larger than clip_low is DAPO's clip-higher."""
    dual_clip: Annotated[float, Field(gt=1.0)] | None = None
    """Dual-clip constant c > 1 bounding the loss for negative advantages; None disables it."""
    value_clip: Annotated[float, Field(gt=0.0)] | None = 0.2
    """Clip range of the value update around the old values; None disables it."""
    entropy_coef: NonNegativeFloat = 0.0
    """Weight of the entropy bonus in the policy loss."""
    loss_aggregation: str = "token_mean"
    """How per-token losses are reduced over the tokens of a whole optimizer step (every micro-batch,
    every data-parallel rank): ``token_mean`` averages its valid tokens; ``seq_mean_token_mean`` and
    ``seq_mean_token_sum`` average its responses, each the mean or sum of its tokens;
    ``seq_mean_token_sum_norm`` (Dr. GRPO's) divides each response's sum by the constant
    ``rollout.max_new_tokens`` (times ``rollout.max_turns`` in conversations); or a registered one."""
    whiten_advantages: bool = True
    """Normalise GAE advantages over the batch (the critic-free estimators normalise their own way)."""
    old_logprobs: Literal["recompute", "rollout"] = "recompute"
    """The log-probs the PPO ratio starts from: ``recompute`` them with the policy (and log the
    engine/policy mismatch; when an iteration is one optimizer step of one epoch and the KL is not in
    the reward, the update's own forward gives them, with no forward of their own), or take the
    engines' sampling log-probs (``rollout``: one policy forward less per iteration; sound when engine
    and policy compute in the same precision, e.g. fp32, and sample without top-k / top-p truncation)."""
    rollout_correction: RolloutCorrectionConfig = Field(default_factory=RolloutCorrectionConfig)
    """Importance correction of the policy loss for the engines' sampling distribution (needs
    ``old_logprobs: recompute``)."""


class RewardFunctionConfig(Section):
    """One reward function of ``reward.functions``."""

    function: str
    """``module:function``, called as ``reward.function`` describes."""
    weight: Annotated[float, Field(allow_inf_nan=False)] = 1.0
    """Its weight in the reward, the weighted sum of the functions' values."""
    name: str | None = None
    """Its name in the metric ``rollout/reward/<name>``; None: the function's own name."""

    @property
    def metric_name(self) -> str:
        return self.name or self.function.partition(":")[2]


class RewardServerConfig(Section):
    """A reward computed by a server (``reward.source: http``): each request posts a batch of samples as
    JSON, ``{"prompts": [...], "responses": [...], "labels": [...], "columns": {name: [...]}}`` (the
    prompts as the policy saw them; the prompt rows' other columns by name), and the answer is
    ``{"scores": [...]}``, one finite number per sample. ``rlhf-ray reward-server`` serves a reward model
    or a reward function this way."""

    url: str | None = None
    """The endpoint, e.g. ``http://judge:8000/score``."""
    timeout_s: Annotated[float, Field(gt=0.0)] = 60.0
    """Seconds one request may take."""
    retries: Annotated[int, Field(ge=0)] = 3
    """Attempts after the first for a request that times out, cannot connect, or is answered 408, 429 or
    5xx; any other error status fails at once."""
    backoff_s: Annotated[float, Field(ge=0.0)] = 1.0
    """Wait before the first retry, doubled before each next one (at most ``max_backoff_s``)."""
    max_backoff_s: Annotated[float, Field(ge=0.0)] = 30.0
    """The longest wait between two attempts."""
    max_concurrency: Annotated[int, Field(ge=1)] = 4
    """Requests in flight at once, per reward rank."""
    batch_size: Annotated[int, Field(ge=1)] = 64
    """Samples per request."""


class RewardConfig(Section):
    """Where the scalar reward of a response comes from."""

    source: Literal["model", "function", "http"] = "model"
    """A sequence-scoring model (``models.reward``), Python functions (``function`` or ``functions``), or a
    server (``server``)."""
    function: str | None = None
    """``module:function`` returning one float per sample. It is called by keyword, each argument a list
    with one entry per sample: ``prompts``, ``responses`` (also as ``completions``), ``labels`` (None
    where a prompt has none), and every other column of the prompt rows by its name; it is passed the
    names it has parameters for, or all of them when it takes ``**kwargs``. The one-function shorthand
    of ``functions``."""
    functions: list[RewardFunctionConfig] = Field(default_factory=list)
    """Several functions (instead of ``function``), each ``{function: module:function, weight: 1.0}``:
    the reward is the weighted sum of their values, and each one's mean value is logged as
    ``rollout/reward/<name>``."""
    server: RewardServerConfig = Field(default_factory=RewardServerConfig)
    """The reward server, its timeouts, retries and concurrency (``source: http``)."""
    clip: Annotated[float, Field(gt=0.0)] | None = None
    """Clip scores (a reward model's, the functions' weighted sum, or a server's) to [-clip, clip]; None
    keeps them as they are."""
    normalize: bool = False
    """Standardise reward-model scores with the mean and std over its training responses, saved with
    the model by ``rlhf-ray rm`` (applied before ``clip``)."""
    gold_function: str | None = None
    """``module:function`` of a hidden "true" reward, logged as ``rollout/gold_reward`` next to the
    learned reward of the same samples (never trained on): the gap shows over-optimisation. Called
    as ``function`` is."""

    def weighted_functions(self) -> list[RewardFunctionConfig]:
        """``functions``, or ``function`` as the one function of weight 1."""
        if self.function is not None:
            return [RewardFunctionConfig(function=self.function)]
        return list(self.functions)
