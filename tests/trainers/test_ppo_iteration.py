"""The driver's side of a PPO iteration that needs no role: the batch it scores, and the reward it trains on."""

import pytest
import torch

from rlhf_ray.data.prompts import Prompt
from rlhf_ray.data.samples import Sample
from rlhf_ray.models import build_tokenizer
from rlhf_ray.trainers.ppo_iteration import PPOIteration
from tests.support.tiny_roles import role_config


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512, seed=0)


def iteration(tmp_path, tokenizer, reward: dict) -> PPOIteration:
    return PPOIteration(role_config(tmp_path, reward=reward), roles=None, tokenizer=tokenizer, kl=None)


def test_each_sample_carries_its_prompt_rows_other_columns(tmp_path, tokenizer):
    prompts = [Prompt([5, 6], "p0", "4", {"difficulty": 2}), Prompt([7], "p1", None, {"topic": "cats"})]
    samples = [[Sample([8], "stop"), Sample([9, 10], "length")], [Sample([11], "stop")]]
    batch = iteration(tmp_path, tokenizer, {}).to_batch(prompts, samples)
    assert batch.texts["label"] == ["4", "4", None]
    assert batch.columns == {"difficulty": [2, 2, None], "topic": [None, None, "cats"]}


def test_the_reward_functions_values_make_the_reward_and_their_metrics(tmp_path, tokenizer):
    functions = [
        {"function": "rlhf_ray.rewards.demo:concise", "weight": 1.0},
        {"function": "tests.support.reward_functions:completion_words", "weight": 0.5, "name": "words"},
    ]
    driver = iteration(tmp_path, tokenizer, {"source": "function", "functions": functions})
    scores, metrics = driver.rewards(torch.tensor([[1.0, 4.0], [0.5, 2.0]]))
    assert scores.tolist() == [3.0, 1.5]  # 1 + 4 / 2, 0.5 + 2 / 2
    assert metrics == {"rollout/reward/concise": 0.75, "rollout/reward/words": 3.0}


def test_a_reward_models_scores_are_the_reward(tmp_path, tokenizer):
    scores, metrics = iteration(tmp_path, tokenizer, {}).rewards(torch.tensor([0.5, -1.0]))
    assert scores.tolist() == [0.5, -1.0] and metrics == {}
