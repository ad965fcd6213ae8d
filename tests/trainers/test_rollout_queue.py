"""The rollout queue: which step's prompts go out when, with which weights, and the staleness bound.

The engines here are a stand-in that records what it is asked for (the queue's bookkeeping is under
test); `test_ppo_e2e.py` runs the queue on real engines."""

from concurrent.futures import Future

import pytest

from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.trainers.rollout_queue import RolloutQueue
from rlhf_ray.workers.rollout_worker import StaleWeightsError


class RecordingEngines:
    def __init__(self):
        self.version = 0
        self.calls: list[tuple[int, int]] = []  # (seed, the version the call went out with)

    def generate_ahead(self, rollout) -> Future:
        version = self.version

        def generate(prompts, sampling: SamplingSpec):
            self.calls.append((sampling.seed, version))
            return [[f"sample of {p}"] for p in prompts]

        future = Future()
        future.set_result(rollout(generate))
        return future


class Prompts:
    """Draws prompt batches 0, 1, 2, ...; the sampler state is the next batch's index."""

    def __init__(self):
        self.drawn = 0

    def __call__(self):
        batch = [_Prompt([self.drawn])]
        self.drawn += 1
        return batch, {"next": self.drawn}


class _Prompt:
    def __init__(self, token_ids):
        self.token_ids = token_ids


def sampling(step: int) -> SamplingSpec:
    return SamplingSpec(n=1, temperature=1.0, top_p=1.0, top_k=-1, max_new_tokens=4, seed=step)


def run(async_steps: int, last_step: int) -> tuple[RecordingEngines, list]:
    engines, prompts = RecordingEngines(), Prompts()
    queue = RolloutQueue(engines, prompts, sampling, last_step, async_steps)
    taken = []
    for step in range(1, last_step + 1):
        rollout = queue.take(step, policy_version=step - 1)
        taken.append((rollout, list(engines.calls)))
        engines.version = step  # the update of this step, then its weight sync
    return engines, taken


def test_on_policy_each_step_samples_its_own_prompts_with_the_previous_updates_weights():
    engines, taken = run(async_steps=0, last_step=4)
    assert engines.calls == [(1, 0), (2, 1), (3, 2), (4, 3)]
    for step, (rollout, _) in enumerate(taken, start=1):
        assert (rollout.step, rollout.version, rollout.sampler_state) == (step, step - 1, {"next": step})
        assert rollout.samples.result() == [[f"sample of {[step - 1]}"]]


@pytest.mark.parametrize("async_steps", [1, 2])
def test_generating_ahead_runs_k_steps_early_and_at_most_k_versions_behind(async_steps):
    engines, taken = run(async_steps=async_steps, last_step=6)
    # Every step is sampled once, in order, and nothing past the last step.
    assert [seed for seed, _ in engines.calls] == [1, 2, 3, 4, 5, 6]
    for step, (rollout, calls_so_far) in enumerate(taken, start=1):
        assert rollout.step == step and rollout.sampler_state == {"next": step}
        assert 0 <= (step - 1) - rollout.version <= async_steps
        # When step n trains, steps up to n + k are on their way.
        assert max(seed for seed, _ in calls_so_far) == min(step + async_steps, 6)
    staleness = [(step - 1) - rollout.version for step, (rollout, _) in enumerate(taken, start=1)]
    assert staleness == {1: [0, 1, 1, 1, 1, 1], 2: [0, 1, 2, 2, 2, 2]}[async_steps]


def test_a_rollout_older_than_the_bound_is_refused():
    engines, prompts = RecordingEngines(), Prompts()
    queue = RolloutQueue(engines, prompts, sampling, last_step=5, async_steps=1)
    queue.take(1, policy_version=0)  # steps 1 and 2 go out with version 0
    with pytest.raises(StaleWeightsError, match=r"sampled with policy version 0, 2 behind version 2; .*allows 1"):
        queue.take(2, policy_version=2)
