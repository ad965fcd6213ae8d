"""The reward role backed by a Python function: errors are surfaced per sample, never zeroed."""

import json

import pytest
import torch

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.data import pack_sequences
from rlhf_ray.workers import RewardError, RewardFunctionWorker
from tests.support.tiny_roles import role_config


def worker(tmp_path, function: str | None = None, clip=None, functions=(), data=None) -> RewardFunctionWorker:
    reward = {"source": "function", "function": function, "functions": list(functions), "clip": clip}
    cfg = role_config(tmp_path, reward=reward, data=data or {})
    reward = RewardFunctionWorker(cfg, rank=0, world_size=1, device=DeviceProfile("cpu"))
    reward.setup()
    return reward


def batch_with_texts(responses):
    batch = pack_sequences([[5, 6]] * len(responses), [[7]] * len(responses), pad_token_id=0)
    return batch.with_fields(texts={"prompt": ["p"] * len(responses), "response": list(responses)})


def test_scores_come_from_the_function_and_are_clipped(tmp_path):
    batch = batch_with_texts(["a", "abcd", "abcdefgh"])
    assert torch.equal(
        worker(tmp_path, "tests.support.reward_functions:length").scores(batch), torch.tensor([1.0, 4, 8])
    )
    clipped = worker(tmp_path, "tests.support.reward_functions:length", clip=5.0).scores(batch)
    assert torch.equal(clipped, torch.tensor([1.0, 4, 5]))


def test_labels_are_passed_through(tmp_path):
    batch = batch_with_texts(["it is 4", "5"]).with_fields(
        texts={"prompt": ["q", "q"], "response": ["it is 4", "5"], "label": ["4", "4"]}
    )
    assert worker(tmp_path, "rlhf_ray.rewards.math:exact_match").scores(batch).tolist() == [1.0, 0.0]


def test_several_functions_by_keyword_make_the_weighted_reward(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Say something.", "difficulty": 1}) + "\n")
    reward = worker(
        tmp_path,
        data={"train_path": str(prompts)},
        functions=[
            {"function": "tests.support.reward_functions:completion_words", "weight": 1.0},
            {"function": "tests.support.reward_functions:times_difficulty", "weight": 0.5, "name": "hard"},
        ],
        clip=9.0,
    )
    batch = batch_with_texts(["one two three", "four", "a b"]).with_fields(columns={"difficulty": [1, 2, 0]})
    # words; len(response) * difficulty
    assert reward.function_scores(batch).tolist() == [[3.0, 13.0], [1.0, 8.0], [2.0, 0.0]]
    # 3 + 13 / 2 = 9.5, clipped to 9; 1 + 8 / 2 = 5; 2 + 0 / 2 = 2
    assert reward.scores(batch).tolist() == [9.0, 5.0, 2.0]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("nan_for_short", r"no finite number for 2 sample\(s\): sample 0: nan for response 'a'; sample 2: nan"),
        ("one_too_few", "returned 2 values for 3 samples"),
        ("crashes", "failed on a batch of 3: KeyError"),
    ],
)
def test_bad_rewards_are_errors_naming_the_samples(tmp_path, function, message):
    reward = worker(tmp_path, f"tests.support.reward_functions:{function}")
    with pytest.raises(RewardError, match=message):
        reward.scores(batch_with_texts(["a", "abcd", "ab"]))


def test_texts_are_required(tmp_path):
    reward = worker(tmp_path, "tests.support.reward_functions:length")
    with pytest.raises(RewardError, match="needs the decoded prompt and response texts"):
        reward.scores(pack_sequences([[5]], [[6]], pad_token_id=0))
