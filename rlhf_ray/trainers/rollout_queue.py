"""The rollouts of the coming PPO steps, generated on time or ahead (``rollout.async_steps``).

With k = 0 a step's responses are sampled when the step asks for them, with the weights of the update
before it. With k > 0 the engines sample the next k steps' responses in the background, with the weights
they hold, while the current step scores and updates: a step then trains on responses of a policy up to
k versions older than the one it updates, which the rollout correction (or the engines' log-probs as
the PPO ratio's old ones) accounts for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial

from rlhf_ray.data.prompts import Prompt
from rlhf_ray.data.samples import Sample
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.trainers.conversations import Rollouts, single_turn
from rlhf_ray.workers.rollout_group import EngineLost, RolloutGroup
from rlhf_ray.workers.rollout_worker import StaleWeightsError

PromptDraw = Callable[[], tuple[list[Prompt], dict]]
"""The next step's prompts, and the sampler's state once they are drawn."""


@dataclass
class Rollout:
    step: int
    prompts: list[Prompt]
    sampler_state: dict
    """The prompt sampler once this step's prompts are drawn: what a checkpoint of the step saves."""
    version: int
    """The policy version the engines sampled with."""
    samples: Future[list[list[Sample]]]


class RolloutQueue:
    def __init__(
        self,
        engines: RolloutGroup,
        draw: PromptDraw,
        sampling: Callable[[int], SamplingSpec],
        last_step: int,
        async_steps: int,
        rollouts: Rollouts = single_turn,
    ):
        self.engines, self.draw, self.sampling, self.rollouts = engines, draw, sampling, rollouts
        self.last_step, self.async_steps = last_step, async_steps
        self.queued: deque[Rollout] = deque()

    def take(self, step: int, policy_version: int) -> Rollout:
        """``step``'s rollout (its samples may still be coming), once the rollouts of the steps up to
        ``async_steps`` after it are on their way. Raises if the engines sampled it with weights more
        than ``async_steps`` versions behind ``policy_version``."""
        while len(self.queued) <= self.async_steps and (next_step := self._next_step(step)) <= self.last_step:
            prompts, sampler_state = self.draw()
            sampling = self.sampling(next_step)
            samples = self.engines.generate_ahead(partial(self.rollouts, prompts, sampling))
            self.queued.append(Rollout(next_step, prompts, sampler_state, self.engines.version, samples))
        rollout = self.queued.popleft()
        if rollout.step != step:
            raise RuntimeError(f"the rollout queue holds step {rollout.step}, but step {step} asked for its rollout")
        if policy_version - rollout.version > self.async_steps:
            raise StaleWeightsError(
                f"step {step}'s responses were sampled with policy version {rollout.version}, "
                f"{policy_version - rollout.version} behind version {policy_version}; "
                f"rollout.async_steps allows {self.async_steps}"
            )
        return rollout

    def samples(self, rollout: Rollout, policy_version: int) -> list[list[Sample]]:
        """The samples of ``rollout`` (which ``take`` gave), waiting for them. If an engine died making
        them, it is restarted with the policy's weights, ``policy_version``, and they are sampled again
        with those (the rollout's version becomes that one)."""
        try:
            return rollout.samples.result()
        except EngineLost as lost:
            if self.engines.restart_lost_engines(str(lost)):
                self.engines.sync_from(policy_version)
        rollout.version = policy_version
        return self.rollouts(
            rollout.prompts,
            self.sampling(rollout.step),
            lambda prompts, sampling: self.engines.generate_recovering(prompts, sampling, policy_version),
        )

    def _next_step(self, step: int) -> int:
        return self.queued[-1].step + 1 if self.queued else step
