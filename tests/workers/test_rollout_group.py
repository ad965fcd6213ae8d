"""vLLM rollout engines as Ray actors, kept in step with a DeepSpeed policy by verified weight syncs."""

import dataclasses

import pytest
import ray
import torch
from transformers import AutoModelForCausalLM

from rlhf_ray.algorithms import logprob_mismatch
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import plan_placement, rollout_units
from rlhf_ray.data.samples import batch_from_samples
from rlhf_ray.distributed.placement import release, reserve
from rlhf_ray.distributed.role_group import RoleGroup
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.models.forward import response_logprobs
from rlhf_ray.workers import PolicyWorker
from rlhf_ray.workers.rollout_group import RolloutGroup
from rlhf_ray.workers.rollout_worker import StaleWeightsError
from tests.support.tiny_roles import TINY_MODELS, policy_training, role_config

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.usefixtures("local_ray")]
CPU = DeviceProfile("cpu")
MAX_NEW_TOKENS = 12
EOS = 2  # the tiny tokenizer's </s>
TEMPERATURE = 0.6
GREEDY = SamplingSpec(n=1, temperature=0.0, top_p=1.0, top_k=-1, max_new_tokens=MAX_NEW_TOKENS, seed=0)


def fixed_prompts() -> list[list[int]]:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 9, (8,), generator=gen)
    return [torch.randint(3, TINY_MODELS["vocab_size"], (int(n),), generator=gen).tolist() for n in lengths]


class Setup:
    """A 2-rank policy and 2 vLLM engines, with the policy version the driver tracks."""

    def __init__(self, tiny_dir, tiny_paths, stage: int, weight_sync: str, tensor_parallel: int):
        self.cfg = role_config(
            tiny_dir,
            data={"prompts_per_step": 4, "max_prompt_length": 16},
            rollout={
                "samples_per_prompt": 2,
                "temperature": TEMPERATURE,
                "num_engines": 2,
                "tensor_parallel_size": tensor_parallel,
                "dtype": "float32",
                "max_new_tokens": MAX_NEW_TOKENS,
                "enforce_eager": True,
                "cpu_kv_cache_bytes": 32 * 2**20,
                "weight_sync": weight_sync,
                "sync_bucket_bytes": 64 * 1024,  # several buckets, even for a tiny model
            },
            train={"policy": policy_training(stage, 1e-2)},
            resources={"device": "cpu", "policy": {"gpus_per_node": 2}},
        )
        self.paths = tiny_paths
        self.slots = reserve([*plan_placement(self.cfg, CPU, ["policy"]), *rollout_units(self.cfg, CPU)], 60)
        self.policy = RoleGroup("policy", PolicyWorker, self.slots["policy"], self.cfg, CPU)
        self.policy.setup(tiny_paths.policy, 10).result()
        self.rollout = RolloutGroup(self.cfg, CPU, self.slots.get("rollout"), tiny_paths.policy, self.policy)
        self.version = 0

    def policy_model(self) -> torch.nn.Module:
        """A transformers copy of the policy with its gathered weights."""
        model = AutoModelForCausalLM.from_pretrained(self.paths.policy, dtype=torch.float32)
        model.load_state_dict(self.policy.state_dict().result())
        return model

    def policy_greedy(self, prompts) -> list[list[int]]:
        """The policy's own greedy continuations: transformers ``generate`` on its gathered weights."""
        model = self.policy_model()
        continuations = []
        for prompt in prompts:
            out = model.generate(
                torch.tensor([prompt]), max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=EOS, pad_token_id=0
            )
            tokens = out[0, len(prompt) :].tolist()
            continuations.append(tokens[: tokens.index(EOS) + 1] if EOS in tokens else tokens)
        return continuations

    def engine_greedy(self, prompts) -> list[list[int]]:
        return [samples[0].token_ids for samples in self.rollout.generate(prompts, GREEDY, self.version)]

    def ppo_update_and_sync(self, seed: int) -> float:
        """Sample, update the policy on random advantages, sync; returns the sync seconds."""
        prompts = fixed_prompts()[:4]
        samples = self.rollout.generate(prompts, SamplingSpec.from_config(self.cfg.rollout, seed), self.version)
        batch = batch_from_samples(prompts, samples, pad_token_id=0)
        gen = torch.Generator().manual_seed(seed)
        batch = batch.with_fields(
            old_logprobs=self.policy.logprobs(batch).result(),
            advantages=torch.randn(batch.response_mask.shape, generator=gen) * batch.response_mask,
        )
        self.policy.update(batch, kl_coef=0.0).result()
        self.version += 1
        return self.rollout.sync_from(self.version)

    def shutdown(self):
        self.rollout.shutdown()
        self.policy.shutdown()
        release(self.slots)


@pytest.fixture(
    scope="module",
    params=[
        (2, "broadcast", 1),
        (3, "broadcast", 1),
        (3, "object_store", 1),
        (2, "broadcast", 2),
        (3, "in_process", 1),
    ],
    ids=["zero2-broadcast", "zero3-broadcast", "zero3-object_store", "zero2-broadcast-tp2", "zero3-in_process"],
)
def setup(request, tiny_dir, tiny_paths):
    stage, weight_sync, tensor_parallel = request.param
    started = Setup(tiny_dir, tiny_paths, stage, weight_sync, tensor_parallel)
    yield started
    started.shutdown()


def test_engines_follow_the_policy_through_updates_and_syncs(setup):
    prompts = fixed_prompts()
    before = setup.engine_greedy(prompts)
    assert before == setup.policy_greedy(prompts)
    assert len({tuple(tokens) for tokens in before}) > 1
    for seed in range(3):
        assert setup.ppo_update_and_sync(seed) < 30
    after = setup.engine_greedy(prompts)
    assert after != before, "the updates should change what the policy generates"
    assert after == setup.policy_greedy(prompts)
    assert ray.get([engine.weights_version.remote() for engine in setup.rollout.engines]) == [3, 3]
    if setup.cfg.rollout.weight_sync == "in_process":
        assert setup.rollout.engines == setup.policy.actors  # each engine inside a policy rank


def test_sampling_logprobs_match_the_policy_at_the_sampling_temperature(setup):
    prompts = fixed_prompts()
    samples = setup.rollout.generate(prompts, SamplingSpec.from_config(setup.cfg.rollout, seed=7), setup.version)
    assert all(len(per_prompt) == 2 for per_prompt in samples)
    batch = batch_from_samples(prompts, samples, pad_token_id=0)
    mismatch = logprob_mismatch(batch.rollout_logprobs, setup.policy.logprobs(batch).result(), batch.response_mask)
    assert mismatch["rollout/logprob_mismatch_mean"] < 1e-3
    assert mismatch["rollout/logprob_mismatch_max"] < 1e-2
    with torch.no_grad():
        untempered = response_logprobs(setup.policy_model(), batch)
    assert (
        logprob_mismatch(batch.rollout_logprobs, untempered, batch.response_mask)["rollout/logprob_mismatch_max"] > 0.1
    )


def test_truncated_sampling_logprobs_are_renormalised_over_the_kept_tokens(setup):
    prompts = fixed_prompts()
    top_5 = dataclasses.replace(SamplingSpec.from_config(setup.cfg.rollout, seed=7), top_k=5)
    batch = batch_from_samples(prompts, setup.rollout.generate(prompts, top_5, setup.version), pad_token_id=0)
    gap = (batch.rollout_logprobs - setup.policy.logprobs(batch).result())[batch.response_mask.bool()]
    # log p / Z over the kept mass Z <= 1: never below the policy's, and above it wherever Z < 1.
    assert gap.min() > -1e-3 and gap.mean() > 1e-2


def test_sampling_with_a_seed_is_reproducible(setup):
    prompts = fixed_prompts()
    spec = SamplingSpec.from_config(setup.cfg.rollout, seed=11)

    def tokens(sampling):
        return [
            [s.token_ids for s in per_prompt] for per_prompt in setup.rollout.generate(prompts, sampling, setup.version)
        ]

    first = tokens(spec)
    assert tokens(spec) == first
    assert tokens(SamplingSpec.from_config(setup.cfg.rollout, seed=12)) != first


def test_a_stale_engine_is_refused(setup):
    with pytest.raises(StaleWeightsError, match=f"hold policy version {setup.version}, not {setup.version + 1}"):
        setup.rollout.generate(fixed_prompts(), GREEDY, setup.version + 1)
    engine = setup.rollout.engines[0]
    with pytest.raises(StaleWeightsError, match=f"engine 0 holds policy version {setup.version} but version 99"):
        ray.get(engine.generate.remote(fixed_prompts(), GREEDY, [0] * 8, 99))
