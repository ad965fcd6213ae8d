"""The transformers ``generate`` engine: same interface as vLLM's, for models vLLM does not serve."""

import pytest
import torch

from rlhf_ray.data.samples import batch_from_samples
from rlhf_ray.engines.hf_engine import HFEngine
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.models import load_causal_lm
from rlhf_ray.models.forward import response_logprobs
from tests.support.tiny_roles import role_config

PROMPTS = [[5, 17, 230], [44], [300, 301, 302, 303, 9]]


@pytest.fixture(scope="module")
def engine(tiny_dir, tiny_paths):
    cfg = role_config(tiny_dir, rollout={"engine": "hf", "dtype": "float32"})
    return HFEngine(tiny_paths.policy, cfg.rollout, torch.device("cpu"))


def sampling(seed, max_new_tokens=10, **changes):
    return SamplingSpec(
        **{
            "n": 3,
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": -1,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
            **changes,
        }
    )


def test_samples_have_the_shape_the_interface_promises(engine):
    out = engine.generate(PROMPTS, sampling(0), seeds=[0, 1, 2])
    assert [len(per_prompt) for per_prompt in out] == [3, 3, 3]
    for sample in (s for per_prompt in out for s in per_prompt):
        assert 1 <= len(sample.token_ids) <= 10
        assert len(sample.logprobs) == len(sample.token_ids)
        ended_on_eos = sample.token_ids[-1] == engine.eos_token_id
        assert sample.finish_reason == ("stop" if ended_on_eos else "length")
        assert engine.eos_token_id not in sample.token_ids[:-1]


def test_sampling_logprobs_are_the_models(engine, tiny_paths):
    out = engine.generate(PROMPTS, sampling(3), seeds=[3, 4, 5])
    batch = batch_from_samples(PROMPTS, out, pad_token_id=0)
    model = load_causal_lm(tiny_paths.policy, "float32")
    with torch.no_grad():
        policy = response_logprobs(model, batch)
    assert (batch.rollout_logprobs - policy).abs().max() < 1e-4


def test_tempered_sampling_logprobs_are_the_tempered_policys(engine, tiny_paths):
    out = engine.generate(PROMPTS, sampling(3, temperature=0.6), seeds=[3, 4, 5])
    batch = batch_from_samples(PROMPTS, out, pad_token_id=0)
    model = load_causal_lm(tiny_paths.policy, "float32")
    with torch.no_grad():
        tempered = response_logprobs(model, batch, temperature=0.6)
        untempered = response_logprobs(model, batch)
    assert (batch.rollout_logprobs - tempered).abs().max() < 1e-3
    assert (batch.rollout_logprobs - untempered).abs().max() > 0.1


def test_seeds_make_sampling_reproducible(engine):
    def tokens(seeds):
        return [[s.token_ids for s in p] for p in engine.generate(PROMPTS, sampling(0), seeds=seeds)]

    assert tokens([7, 8, 9]) == tokens([7, 8, 9])
    assert tokens([7, 8, 9]) != tokens([10, 11, 12])


def test_a_prompts_samples_do_not_depend_on_the_rest_of_the_batch(engine):
    alone = engine.generate(PROMPTS[1:2], sampling(0), seeds=[21])
    batched = engine.generate(PROMPTS, sampling(0), seeds=[20, 21, 22])
    assert [s.token_ids for s in batched[1]] == [s.token_ids for s in alone[0]]
    assert [s.token_ids for s in batched[0]] != [s.token_ids for s in batched[1]]


def test_a_call_larger_than_the_batch_size_gives_the_same_samples(engine):
    def tokens():
        return [[s.token_ids for s in p] for p in engine.generate(PROMPTS, sampling(0), seeds=[30, 33, 36])]

    whole, batch_size = tokens(), engine.batch_size
    engine.batch_size = 4  # one prompt's 3 samples per batch
    try:
        assert tokens() == whole
    finally:
        engine.batch_size = batch_size


def test_greedy_and_new_weights(engine, tiny_paths):
    greedy = sampling(None, n=1, temperature=0.0)
    before = [p[0].token_ids for p in engine.generate(PROMPTS, greedy, seeds=[None] * 3)]
    assert before == [p[0].token_ids for p in engine.generate(PROMPTS, greedy, seeds=[None] * 3)]
    original = {name: t.clone() for name, t in engine.model.state_dict().items()}
    try:
        gen = torch.Generator().manual_seed(0)
        engine.load_weights({name: t + 0.05 * torch.randn(t.shape, generator=gen) for name, t in original.items()})
        assert [p[0].token_ids for p in engine.generate(PROMPTS, greedy, seeds=[None] * 3)] != before
        with pytest.raises(ValueError, match=r"unexpected \['not.a.weight'\]"):
            engine.load_weights({"not.a.weight": torch.zeros(1)})
    finally:
        engine.model.load_state_dict(original)
