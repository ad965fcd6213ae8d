"""Greedy-decode prompts with vLLM's in-process engine; write prompt and output ids as JSON.

Run as a child process by test_vllm_agreement.py: an in-process vLLM engine changes its host
process for good (it replaces `torch.set_num_threads` with a no-op, seeds the global RNG, binds
memory to a NUMA node), which must not leak into the rest of the test session.

usage: python vllm_greedy.py MODEL_FOLDER MAX_TOKENS PROMPTS_JSON RESULT_JSON
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

from vllm import LLM, SamplingParams  # noqa: E402


def main(model: str, max_tokens: int, prompts: list[str]) -> dict:
    started = time.perf_counter()
    llm = LLM(
        model=model,
        dtype="float32",
        distributed_executor_backend="uni",
        kv_cache_memory_bytes=64 * 2**20,  # the default memory fraction fails on small CPU hosts
        max_model_len=128,
        enforce_eager=True,
        seed=0,
    )
    loaded = time.perf_counter()
    outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_tokens))
    generated = time.perf_counter()
    return {
        "prompt_ids": [output.prompt_token_ids for output in outputs],
        "output_ids": [list(output.outputs[0].token_ids) for output in outputs],
        "load_s": loaded - started,
        "generate_s": generated - loaded,
    }


if __name__ == "__main__":
    model, max_tokens, prompts_file, result_file = sys.argv[1:]
    prompts = json.loads(Path(prompts_file).read_text())
    Path(result_file).write_text(json.dumps(main(model, int(max_tokens), prompts)))
