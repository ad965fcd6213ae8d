"""Prompt loading (validated before anything starts) and the resumable prompt sampler."""

import json

import pytest

from rlhf_ray.config.schema import DataConfig
from rlhf_ray.data.prompts import load_prompts
from rlhf_ray.data.records import DataError
from rlhf_ray.data.sampler import PromptSampler
from rlhf_ray.models import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512, seed=0)


def write_jsonl(path, rows):
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


def test_jsonl_prompts_are_templated_and_tokenised(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Count the cats.", "answer": 3}, {"prompt": "Hi"}])
    prompts = load_prompts(str(path), DataConfig(label_key=None), tokenizer, seed=0)
    assert len(prompts) == 2
    first = prompts.items[0]
    assert first.text.startswith("<s><|user|>\nCount the cats.") and first.text.endswith("<|assistant|>\n")
    assert first.token_ids == tokenizer(first.text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "ok"}, {"text": "no prompt"}], r"p.jsonl:2: missing key: no 'prompt'"),
        ([{"prompt": "ok"}, "{not json"], r"p.jsonl:2: invalid JSON"),
        ([{"prompt": "   "}], r"p.jsonl:1: empty text"),
        ([{"prompt": "word " * 200}], r"p.jsonl:1: too long: \d+ tokens, data.max_prompt_length is 64"),
    ],
)
def test_bad_rows_name_file_and_line_in_strict_mode(tmp_path, tokenizer, rows, message):
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError, match=message):
        load_prompts(str(path), DataConfig(max_prompt_length=64), tokenizer, seed=0)


def test_lenient_mode_skips_and_counts(tmp_path, tokenizer):
    rows = [{"prompt": "good"}, {"text": "x"}, "{bad", {"prompt": ""}, {"prompt": "also good"}]
    prompts = load_prompts(str(write_jsonl(tmp_path / "p.jsonl", rows)), DataConfig(strict=False), tokenizer, 0)
    assert len(prompts) == 2
    assert prompts.skipped == {"missing key": 1, "invalid JSON": 1, "empty text": 1}


def test_a_rows_other_columns_are_kept_for_reward_functions(tmp_path, tokenizer):
    rows = [
        {"prompt": "Count the cats.", "answer": 3, "difficulty": 2, "tags": ["count"]},
        {"prompt": "Hi", "answer": 1},
    ]
    prompts = load_prompts(str(write_jsonl(tmp_path / "p.jsonl", rows)), DataConfig(label_key="answer"), tokenizer, 0)
    assert [(p.label, p.columns) for p in prompts.items] == [("3", {"difficulty": 2, "tags": ["count"]}), ("1", {})]


def test_synthetic_prompts_and_labels(tokenizer):
    prompts = load_prompts(None, DataConfig(), tokenizer, seed=3)
    assert len(prompts) == 512 and prompts.items[0].label is None
    assert load_prompts(None, DataConfig(), tokenizer, seed=3).items[5] == prompts.items[5]


def test_sampler_covers_epochs_and_resumes_exactly():
    sampler = PromptSampler(10, 4, seed=1, shuffle=True)
    first_epoch = sampler.next_batch() + sampler.next_batch()
    assert len(set(first_epoch)) == 8
    state = sampler.state_dict()
    expected = [sampler.next_batch() for _ in range(3)]
    assert sampler.epoch == 2
    resumed = PromptSampler(10, 4, seed=1, shuffle=True)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(3)] == expected
    assert PromptSampler(10, 4, seed=1, shuffle=False).next_batch() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="prompts_per_step is 12 but the dataset has only 10 usable rows"):
        PromptSampler(10, 12, seed=1, shuffle=True)
