"""The sequence batch: packing, selection, splitting, validation."""

import pytest
import torch

from rlhf_ray.data import SequenceBatch, pack_sequences


def test_pack_left_pads_prompts_and_right_pads_responses():
    batch = pack_sequences([[5, 6, 7], [8]], [[9], [10, 11]], pad_token_id=0)
    assert batch.sequences.tolist() == [[5, 6, 7, 9, 0], [0, 0, 8, 10, 11]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert batch.response_mask.tolist() == [[1, 0], [1, 1]]
    assert batch.response_length == 2 and len(batch) == 2


def test_empty_response_and_empty_prompt():
    batch = pack_sequences([[5]], [[]], pad_token_id=0)
    assert batch.response_mask.tolist() == [[0]]
    with pytest.raises(ValueError, match="every prompt needs at least one token"):
        pack_sequences([[]], [[1]], pad_token_id=0)


def test_select_chunks_and_concat_round_trip():
    batch = pack_sequences([[1, 2], [3], [4, 5], [6]], [[7], [8, 9], [10], [11]], pad_token_id=0)
    batch = batch.with_fields(
        scores=torch.arange(4.0),
        advantages=torch.ones(4, 2),
        texts={"response": ["a", "b", "c", "d"]},
        columns={"difficulty": [1, 2, 3, None]},
    )
    picked = batch.select([3, 0])
    assert picked.scores.tolist() == [3.0, 0.0] and picked.texts["response"] == ["d", "a"]
    assert picked.columns == {"difficulty": [None, 1]}
    parts = batch.chunks([1, 3])
    assert [len(p) for p in parts] == [1, 3] and parts[1].columns == {"difficulty": [2, 3, None]}
    again = SequenceBatch.concat(parts)
    assert torch.equal(again.sequences, batch.sequences) and again.texts == batch.texts
    assert again.columns == batch.columns
    with pytest.raises(ValueError, match="do not add up to the batch size 4"):
        batch.chunks([1, 1])


def test_shapes_are_validated():
    batch = pack_sequences([[1, 2]], [[3, 4]], pad_token_id=0)
    with pytest.raises(ValueError, match=r"advantages is \(1, 3\), response_mask \(1, 2\)"):
        batch.with_fields(advantages=torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"texts\['prompt'\] has 2 entries for 1 sequences"):
        batch.with_fields(texts={"prompt": ["a", "b"]})
    with pytest.raises(ValueError, match=r"columns\['difficulty'\] has 2 entries for 1 sequences"):
        batch.with_fields(columns={"difficulty": [1, 2]})
    with pytest.raises(ValueError, match="field 'values' is set in some batches"):
        SequenceBatch.concat([batch.with_fields(values=torch.zeros(1, 2)), batch])
