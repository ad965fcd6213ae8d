"""The reward role backed by a Python function: errors are surfaced per sample, never zeroed."""

import pytest
import torch

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.data import pack_sequences
from rlhf_ray.workers import RewardError, RewardFunctionWorker
from tests.support.tiny_roles import role_config


def worker(tmp_path, function: str, clip=None) -> RewardFunctionWorker:
    cfg = role_config(tmp_path, reward={"source": "function", "function": function, "clip": clip})
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
