"""``rollout.cpu_kv_cache_bytes: auto``: the KV cache of a CPU engine holds one call's sequences at their
longest, and not more."""

from rlhf_ray.config import validate_config
from rlhf_ray.engines.rollout import KVCapacity, SamplingSpec, cpu_kv_cache_bytes, kv_cache_shortfall
from rlhf_ray.engines.vllm_engine import CPU_BLOCK_SIZE, kv_bytes_per_token
from tests.config.test_checks import base

BYTES_PER_TOKEN = 4096


def auto_size(**rollout) -> int:
    raw = base(data={"max_prompt_length": 16, "prompts_per_step": 32}, rollout={"max_new_tokens": 32, **rollout})
    return cpu_kv_cache_bytes(validate_config(raw), BYTES_PER_TOKEN, CPU_BLOCK_SIZE)


def test_one_block_per_sequence_of_a_step_and_the_block_vllm_keeps_aside():
    # 32 prompts x 4 samples of at most 16 + 32 tokens: two 32-token blocks each, and one more.
    assert CPU_BLOCK_SIZE == 32
    size = auto_size(samples_per_prompt=4)
    assert size == (128 * 2 + 1) * CPU_BLOCK_SIZE * BYTES_PER_TOKEN
    blocks = size // (CPU_BLOCK_SIZE * BYTES_PER_TOKEN)
    sampling = SamplingSpec(n=4, temperature=1.0, top_p=1.0, top_k=-1, max_new_tokens=32)
    longest_prompts = [[5] * 16] * 32
    assert kv_cache_shortfall(longest_prompts, sampling, KVCapacity(CPU_BLOCK_SIZE, blocks, 256)) is None
    assert kv_cache_shortfall(longest_prompts, sampling, KVCapacity(CPU_BLOCK_SIZE, blocks - 1, 256)) is not None


def test_several_engines_each_hold_a_call_and_conversations_their_every_turn():
    # 2 engines: the step goes out in 4 calls of 8 prompts.
    assert auto_size(samples_per_prompt=4, num_engines=2) == (32 * 2 + 1) * CPU_BLOCK_SIZE * BYTES_PER_TOKEN
    # 3 turns of 32 tokens and 2 user messages of 40: 16 + 96 + 80 = 192 tokens, six blocks per sequence.
    conversation = auto_size(
        samples_per_prompt=2,
        max_turns=3,
        environment="rlhf_ray.environments.instructed:InstructingUser",
        max_environment_tokens=40,
    )
    assert conversation == (64 * 6 + 1) * CPU_BLOCK_SIZE * BYTES_PER_TOKEN


def test_a_size_given_in_bytes_is_kept():
    assert auto_size(cpu_kv_cache_bytes=12345) == 12345


def test_bytes_per_token_follow_the_model_and_the_dtype(tiny_paths):
    # The tests' tiny model: 2 layers x 2 key/value heads x 32 dims, keys and values.
    assert kv_bytes_per_token(str(tiny_paths.policy), "bfloat16") == 2 * 2 * 2 * 32 * 2
    assert kv_bytes_per_token(str(tiny_paths.policy), "float32") == 2 * 2 * 2 * 32 * 4
