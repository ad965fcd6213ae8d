"""Rankings as the reward model reads them: a ranking of K gives its K(K-1)/2 pairs, each weighted so that
the ranking counts once in the loss; ties give no pair; flagged and skipped items are left out and counted."""

import json
import math

import pytest
import torch

from rlhf_ray.algorithms import bradley_terry_loss, dpo_loss
from rlhf_ray.config.schema import PreferenceDataConfig
from rlhf_ray.data.preferences import load_preferences, preference_batch
from rlhf_ray.data.rankings import check_ranking, ordered_pairs, pair_agreement
from rlhf_ray.data.records import DataError
from rlhf_ray.models import build_tokenizer

RESPONSES = ["The warm cats sing.", "The cold cats sleep.", "The bright cats play.", "The dark cats hide."]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512, seed=0)


def ranking_row(ranking, flag=None, responses=RESPONSES):
    return {"item": 0, "prompt": "Tell me about cats.", "responses": responses, "ranking": ranking, "flag": flag}


def load(tmp_path, tokenizer, rows, **data):
    path = tmp_path / "rankings.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_preferences(str(path), PreferenceDataConfig(**data), tokenizer, "reward_model.data.strict")


def text(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=True)


def test_a_ranking_orders_every_pair_across_tiers_and_none_within_a_tier():
    assert ordered_pairs([[2], [0], [3], [1]]) == [(2, 0), (2, 3), (2, 1), (0, 3), (0, 1), (3, 1)]
    assert ordered_pairs([[2], [0, 3], [1]]) == [(2, 0), (2, 3), (2, 1), (0, 1), (3, 1)]
    assert ordered_pairs([[0, 1, 2]]) == []
    full = ordered_pairs([[i] for i in range(9)])
    assert len(full) == 9 * 8 // 2


@pytest.mark.parametrize(
    "ranking", [[[0], [1], [1], [2]], [[0], [1], [2]], [[0], [], [1, 2, 3]], [[0, 1, 2, 4]], "0123", [[0, True, 2, 3]]]
)
def test_a_ranking_must_place_each_response_once(ranking):
    with pytest.raises(DataError, match="bad ranking"):
        check_ranking(ranking, 4)


def test_agreement_counts_pairs_both_rankings_order():
    assert pair_agreement([[0], [1], [2]], [[0], [1], [2]]) == (3, 3)
    assert pair_agreement([[0], [1], [2]], [[2], [1], [0]]) == (0, 3)
    # (0, 2) is tied in the second ranking: not compared; (0, 1) agrees, (1, 2) does not
    assert pair_agreement([[0], [1], [2]], [[0, 2], [1]]) == (1, 2)


def test_a_ranking_of_four_gives_six_pairs_that_weigh_one_ranking(tmp_path, tokenizer):
    rows = [ranking_row([[2], [0], [3], [1]]), {"prompt": "Hi", "chosen": "Hello.", "rejected": "Go."}]
    pairs = load(tmp_path, tokenizer, rows).items
    assert len(pairs) == 7
    ranked = [(text(tokenizer, p.chosen_ids), text(tokenizer, p.rejected_ids)) for p in pairs[:6]]
    assert ranked[0] == (RESPONSES[2], RESPONSES[0])
    assert ranked[-1] == (RESPONSES[3], RESPONSES[1])
    assert [p.weight for p in pairs] == pytest.approx([1 / 6] * 6 + [1.0])
    assert sum(p.weight for p in pairs[:6]) == pytest.approx(1.0)
    assert all(p.prompt_ids == pairs[0].prompt_ids for p in pairs[:6])  # one prompt, rendered once
    assert text(tokenizer, pairs[0].prompt_ids).strip() == "Tell me about cats."


def test_ties_give_no_pair_and_the_ranking_still_counts_once(tmp_path, tokenizer):
    pairs = load(tmp_path, tokenizer, [ranking_row([[2], [0, 3], [1]])]).items
    ranked = {(text(tokenizer, p.chosen_ids), text(tokenizer, p.rejected_ids)) for p in pairs}
    assert (RESPONSES[0], RESPONSES[3]) not in ranked and (RESPONSES[3], RESPONSES[0]) not in ranked
    assert len(pairs) == 5
    assert sum(p.weight for p in pairs) == pytest.approx(1.0)


def test_same_text_responses_are_tied_whatever_the_ranking(tmp_path, tokenizer):
    responses = ["Same.", "Other.", "Same."]
    pairs = load(tmp_path, tokenizer, [ranking_row([[0], [1], [2]], responses=responses)]).items
    assert [(text(tokenizer, p.chosen_ids), text(tokenizer, p.rejected_ids)) for p in pairs] == [
        ("Same.", "Other."),
        ("Other.", "Same."),
    ]


def test_flagged_skipped_and_all_tied_items_are_left_out_and_counted(tmp_path, tokenizer):
    rows = [
        ranking_row([[0], [1], [2], [3]]),
        ranking_row(None, flag="unsafe"),
        ranking_row([[0], [1], [2], [3]], flag="nonsense"),
        ranking_row(None),
        ranking_row([[0, 1, 2, 3]]),
    ]
    loaded = load(tmp_path, tokenizer, rows)
    assert len(loaded.items) == 6
    assert loaded.excluded == {"flagged": 2, "skipped": 1, "all_tied": 1}
    assert loaded.skipped == {}


def test_a_file_of_only_flagged_items_has_no_usable_row(tmp_path, tokenizer):
    with pytest.raises(DataError, match="no usable row"):
        load(tmp_path, tokenizer, [ranking_row(None, flag="unsafe")])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (ranking_row([[0], [1], [2]]), r"rankings.jsonl:1: bad ranking: .* each of the 4 responses"),
        (ranking_row([[0], [1]], responses=["Only one."]), r"rankings.jsonl:1: bad responses"),
        (ranking_row([[0], [1]], responses=["A.", ""]), r"rankings.jsonl:1: empty text"),
        ({"prompt": "Hi", "ranking": [[0], [1]]}, r"rankings.jsonl:1: missing key: no responses 'responses'"),
        (ranking_row([[0], [1], [2], [3]], responses=["word " * 60] + RESPONSES[1:]), r"rankings.jsonl:1: too long"),
    ],
)
def test_bad_ranking_rows_name_file_line_and_problem(tmp_path, tokenizer, row, message):
    with pytest.raises(DataError, match=message):
        load(tmp_path, tokenizer, [row], max_length=64)


def test_lenient_loading_skips_bad_ranking_rows_apart_from_the_excluded_ones(tmp_path, tokenizer):
    rows = [ranking_row([[0], [1], [2], [3]]), ranking_row([[0]]), ranking_row(None, flag="unsafe")]
    loaded = load(tmp_path, tokenizer, rows, strict=False)
    assert len(loaded.items) == 6
    assert loaded.skipped == {"bad ranking": 1}
    assert loaded.excluded == {"flagged": 1}


def test_the_batch_carries_the_weights_through_select_and_chunks(tmp_path, tokenizer):
    rows = [ranking_row([[0], [1, 2], [3]]), {"prompt": "Hi", "chosen": "Hello.", "rejected": "Go."}]
    batch = preference_batch(load(tmp_path, tokenizer, rows).items, tokenizer.pad_token_id)
    assert batch.weight.tolist() == pytest.approx([0.2] * 5 + [1.0])
    assert batch.select([5, 0]).weight.tolist() == pytest.approx([1.0, 0.2])
    assert [c.weight.tolist() for c in batch.chunks([4, 2])][1] == pytest.approx([0.2, 1.0])


def minus_log_sigmoid(x):
    return math.log1p(math.exp(-x))


def test_the_weighted_loss_is_the_mean_over_rankings_of_each_rankings_mean_pair_loss(randn):
    chosen, rejected = randn(7), randn(7)
    weight = torch.tensor([1 / 6] * 6 + [1.0])
    loss, accuracy = bradley_terry_loss(chosen, rejected, None, weight)
    per_pair = [minus_log_sigmoid(chosen[i].item() - rejected[i].item()) for i in range(7)]
    right = [float(chosen[i] > rejected[i]) for i in range(7)]
    assert loss.item() == pytest.approx((sum(per_pair[:6]) / 6 + per_pair[6]) / 2)
    assert accuracy.item() == pytest.approx((sum(right[:6]) / 6 + right[6]) / 2)
    unweighted, _ = bradley_terry_loss(chosen, rejected)
    assert unweighted.item() == pytest.approx(sum(per_pair) / 7)


def test_dpo_weighs_pairs_the_same_way(randn):
    logps = [randn(3, scale=5.0) - 40.0 for _ in range(4)]
    weight = torch.tensor([0.5, 0.5, 1.0])
    loss, _, _ = dpo_loss(*logps, beta=0.1, weight=weight)
    each = [dpo_loss(*(x[i : i + 1] for x in logps), beta=0.1)[0].item() for i in range(3)]
    assert loss.item() == pytest.approx((0.5 * each[0] + 0.5 * each[1] + each[2]) / 2)
