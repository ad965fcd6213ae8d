"""SFT demonstrations and preference pairs: rendered as the model sees them, and every bad-row kind
named with file and line (strict) or skipped and counted (lenient)."""

import json

import pytest
import torch

from rlhf_ray.config.schema import PreferenceDataConfig, SFTDataConfig
from rlhf_ray.data.preferences import load_preferences, preference_batch
from rlhf_ray.data.records import DataError
from rlhf_ray.data.sft import demonstration_batch, load_demonstrations
from rlhf_ray.models import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512, seed=0)


def write_jsonl(path, rows):
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return str(path)


def decode(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=False)


def test_a_demonstration_is_a_templated_prompt_and_a_response_ending_the_turn(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Count the cats.", "response": "Three cats."}])
    [demo] = load_demonstrations(path, SFTDataConfig(), tokenizer, "sft.data.strict").items
    assert decode(tokenizer, demo.prompt_ids) == "<s><|user|>\nCount the cats.</s><|assistant|>\n"
    assert decode(tokenizer, demo.response_ids) == "Three cats.</s>"
    batch = demonstration_batch([demo], tokenizer.pad_token_id)
    assert batch.response_mask.sum() == len(demo.response_ids)


def test_chat_messages_end_in_the_response_and_plain_text_gets_eos(tmp_path, tokenizer):
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": conversation}])
    [demo] = load_demonstrations(path, SFTDataConfig(), tokenizer, "sft.data.strict").items
    assert decode(tokenizer, demo.prompt_ids).endswith("<|user|>\nHi</s><|assistant|>\n")
    assert decode(tokenizer, demo.response_ids) == "Hello.</s>"

    plain = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "2 + 2 =", "response": " 4"}])
    [demo] = load_demonstrations(plain, SFTDataConfig(apply_chat_template=False), tokenizer, "x").items
    assert decode(tokenizer, demo.prompt_ids) == "2 + 2 ="
    assert decode(tokenizer, demo.response_ids) == " 4</s>"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "ok", "response": "fine"}, "{oops"], r"d.jsonl:2: invalid JSON"),
        ([{"prompt": "ok"}], r"d.jsonl:1: missing key: no 'response' \(keys: \['prompt'\]\)"),
        ([{"response": "orphan"}], r"d.jsonl:1: missing key: no 'prompt'"),
        ([{"prompt": "ok", "response": "  "}], r"d.jsonl:1: empty text: 'response' is empty"),
        ([{"prompt": "ok", "response": "word " * 100}], r"d.jsonl:1: too long: \d+ tokens, max_length is 64"),
        ([{"messages": [{"role": "user", "content": "hi"}]}], r"d.jsonl:1: bad messages"),
        ([["not", "a", "mapping"]], r"d.jsonl:1: not a mapping"),
    ],
)
def test_bad_demonstrations_name_file_line_and_problem(tmp_path, tokenizer, rows, message):
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match=message) as error:
        load_demonstrations(path, SFTDataConfig(max_length=64), tokenizer, "sft.data.strict")
    assert "set sft.data.strict: false to skip such rows" in str(error.value)


def test_lenient_demonstrations_are_skipped_and_counted(tmp_path, tokenizer):
    rows = [
        {"prompt": "a", "response": "b"},
        "{oops",
        {"prompt": "a"},
        {"prompt": "", "response": "b"},
        {"prompt": "a", "response": "word " * 100},
        {"prompt": "c", "response": "d"},
    ]
    loaded = load_demonstrations(
        write_jsonl(tmp_path / "d.jsonl", rows), SFTDataConfig(strict=False, max_length=64), tokenizer, "x"
    )
    assert len(loaded) == 2
    assert loaded.skipped == {"invalid JSON": 1, "missing key": 1, "empty text": 1, "too long": 1}


def test_a_file_with_no_usable_row_fails_even_when_lenient(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a"}])
    with pytest.raises(DataError, match="d.jsonl: no usable row"):
        load_demonstrations(path, SFTDataConfig(strict=False), tokenizer, "x")


def test_preference_pairs_share_the_prompt_and_keep_their_margin(tmp_path, tokenizer):
    rows = [
        {"prompt": "Hi", "chosen": "Hello there.", "rejected": "Go.", "margin": 1.5},
        {"prompt": "Yo", "chosen": [{"role": "assistant", "content": "Hey."}], "rejected": "No.", "margin": 0},
    ]
    data = PreferenceDataConfig(margin_key="margin")
    pairs = load_preferences(write_jsonl(tmp_path / "p.jsonl", rows), data, tokenizer, "x").items
    assert decode(tokenizer, pairs[0].chosen_ids) == "Hello there.</s>"
    assert decode(tokenizer, pairs[1].chosen_ids) == "Hey.</s>"
    batch = preference_batch(pairs, tokenizer.pad_token_id)
    assert batch.chosen.sequences.shape == batch.rejected.sequences.shape
    assert torch.equal(batch.margin, torch.tensor([1.5, 0.0]))
    swapped = batch.select([1, 0])
    assert torch.equal(swapped.chosen.sequences[0], batch.chosen.sequences[1])
    assert torch.equal(swapped.margin, torch.tensor([0.0, 1.5]))
    both = batch.both()
    assert len(both) == 4 and torch.equal(both.sequences[2], batch.rejected.sequences[0])
    assert [len(c) for c in batch.chunks([1, 1])] == [1, 1]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "Hi", "chosen": "Same.", "rejected": "Same.", "margin": 1}, r"p.jsonl:1: chosen == rejected"),
        ({"prompt": "Hi", "chosen": "A."}, r"p.jsonl:1: missing key: no 'rejected'"),
        ({"prompt": "Hi", "chosen": "", "rejected": "B.", "margin": 1}, r"p.jsonl:1: empty text: 'chosen' is empty"),
        ({"prompt": "Hi", "chosen": "A.", "rejected": "word " * 100, "margin": 1}, r"p.jsonl:1: too long"),
        ({"prompt": "Hi", "chosen": "A.", "rejected": "B.", "margin": "big"}, r"p.jsonl:1: bad margin"),
        ({"prompt": "Hi", "chosen": "A.", "rejected": "B."}, r"p.jsonl:1: missing key: no margin 'margin'"),
    ],
)
def test_bad_pairs_name_file_line_and_problem(tmp_path, tokenizer, row, message):
    path = write_jsonl(tmp_path / "p.jsonl", [row])
    data = PreferenceDataConfig(max_length=64, margin_key="margin")
    with pytest.raises(DataError, match=message):
        load_preferences(path, data, tokenizer, "reward_model.data.strict")


def test_lenient_pairs_are_skipped_and_counted(tmp_path, tokenizer):
    rows = [
        {"prompt": "Hi", "chosen": "A.", "rejected": "B."},
        {"prompt": "Hi", "chosen": "Same.", "rejected": "Same."},
        "not json",
        {"prompt": "Hi", "chosen": "A."},
    ]
    data = PreferenceDataConfig(strict=False)
    loaded = load_preferences(write_jsonl(tmp_path / "p.jsonl", rows), data, tokenizer, "x")
    assert len(loaded) == 1
    assert loaded.skipped == {"chosen == rejected": 1, "invalid JSON": 1, "missing key": 1}


def test_parquet_and_datasets_folders_load_like_jsonl(tmp_path, tokenizer):
    import datasets

    rows = [{"prompt": "Hi", "chosen": "A.", "rejected": "B."}, {"prompt": "Yo", "chosen": "C.", "rejected": "D."}]
    table = datasets.Dataset.from_list(rows)
    table.to_parquet(str(tmp_path / "p.parquet"))
    table.save_to_disk(str(tmp_path / "folder"))
    jsonl = load_preferences(write_jsonl(tmp_path / "p.jsonl", rows), PreferenceDataConfig(), tokenizer, "x").items
    for path in (tmp_path / "p.parquet", tmp_path / "folder"):
        assert load_preferences(str(path), PreferenceDataConfig(), tokenizer, "x").items == jsonl
