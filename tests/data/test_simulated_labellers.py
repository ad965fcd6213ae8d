"""The simulated labellers and their gold reward: readable, reproducible, and as noisy as asked."""

import json

import pytest

from rlhf_ray.config.schema import LabellerConfig
from rlhf_ray.data.simulated import EVAL_PAIRS, simulate_labels
from rlhf_ray.rewards.gold import cheerful


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gold_reward_counts_cheerful_against_gloomy_words():
    responses = ["The happy cat sees the bright tree.", "The sad dog.", "A Warm, dark day.", "Nothing here."]
    assert cheerful([""] * 4, responses, [None] * 4) == [1.0, -1.0, 0.0, 0.0]
    assert cheerful([""], ["happy happy sad"], [None]) == pytest.approx([1 / 3])


def test_noise_free_labels_prefer_the_higher_gold_reward_and_are_reproducible(tmp_path):
    labeller = LabellerConfig(output_dir=str(tmp_path / "a"), demonstrations=32, pairs=64)
    files = simulate_labels(labeller, seed=3)
    pairs = rows(files.preferences_train)
    assert len(pairs) == 64 and len(rows(files.preferences_eval)) == EVAL_PAIRS
    assert len(rows(files.sft_train)) == 32
    for pair in pairs + rows(files.preferences_eval):
        chosen, rejected = cheerful(["", ""], [pair["chosen"], pair["rejected"]], [None, None])
        assert chosen > rejected
    again = simulate_labels(labeller.model_copy(update={"output_dir": str(tmp_path / "b")}), seed=3)
    assert again.preferences_train.read_text() == files.preferences_train.read_text()
    # Demonstrators have no taste: about as many gloomy as cheerful answers.
    golds = cheerful([""] * 32, [row["response"] for row in rows(files.sft_train)], [None] * 32)
    assert abs(sum(golds) / len(golds)) < 0.35


def test_label_noise_flips_about_the_asked_share_of_training_pairs_only(tmp_path):
    labeller = LabellerConfig(output_dir=str(tmp_path), demonstrations=8, pairs=400, noise=0.25)
    files = simulate_labels(labeller, seed=0)
    flipped = [cheerful(["", ""], [p["chosen"], p["rejected"]], [None, None]) for p in rows(files.preferences_train)]
    share = sum(chosen < rejected for chosen, rejected in flipped) / len(flipped)
    assert 0.18 < share < 0.32
    for pair in rows(files.preferences_eval):
        chosen, rejected = cheerful(["", ""], [pair["chosen"], pair["rejected"]], [None, None])
        assert chosen > rejected


def test_existing_labels_are_reused_only_for_the_same_settings(tmp_path):
    labeller = LabellerConfig(output_dir=str(tmp_path), demonstrations=8, pairs=8)
    files = simulate_labels(labeller, seed=0)
    files.sft_train.write_text("edited\n")
    simulate_labels(labeller, seed=0)
    assert files.sft_train.read_text() == "edited\n"
    simulate_labels(labeller, seed=1)
    assert files.sft_train.read_text() != "edited\n"
