"""Sizing a vLLM engine's KV cache: a step's sequences should fit at once, not in waves."""

from rlhf_ray.engines.rollout import KVCapacity, SamplingSpec, kv_cache_shortfall

SAMPLING = SamplingSpec(n=4, temperature=1.0, top_p=1.0, top_k=-1, max_new_tokens=32)


def prompts(count: int, longest: int) -> list[list[int]]:
    return [[5] * (longest if i == 0 else 3) for i in range(count)]


def test_a_call_that_fits_is_fine():
    # 32 prompts x 4 samples, each at most 16 + 32 = 48 tokens: one 128-token block per sequence.
    assert kv_cache_shortfall(prompts(32, 16), SAMPLING, KVCapacity(128, 129, 256)) is None


def test_one_block_short_is_reported_with_the_numbers_and_the_setting():
    # vLLM keeps one of the 128 blocks aside, so 127 of 128 sequences fit: the last one runs alone.
    message = kv_cache_shortfall(prompts(32, 16), SAMPLING, KVCapacity(128, 128, 256))
    assert "holds 127 blocks of 128 tokens but 128 sequences need 128" in message
    assert "rollout.cpu_kv_cache_bytes" in message


def test_each_prompts_length_sets_its_samples_blocks():
    # One prompt of 97 tokens: 97 + 32 = 129, two blocks for each of its 4 samples; the rest take one.
    message = kv_cache_shortfall(prompts(32, 97), SAMPLING, KVCapacity(128, 132, 256))
    assert "128 sequences need 132" in message
    assert kv_cache_shortfall(prompts(32, 97), SAMPLING, KVCapacity(128, 133, 256)) is None
    assert kv_cache_shortfall(prompts(32, 96), SAMPLING, KVCapacity(128, 129, 256)) is None


def test_more_sequences_than_the_scheduler_runs_at_once_are_reported():
    message = kv_cache_shortfall(prompts(32, 16), SAMPLING, KVCapacity(128, 1000, 100))
    assert "runs at most 100 sequences at once but was given 128" in message
