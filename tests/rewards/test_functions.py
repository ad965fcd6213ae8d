"""Rule-based reward functions, how a reward function is called, and how several make the reward."""

import pytest
import torch

from rlhf_ray.config.schema import RewardConfig
from rlhf_ray.rewards.demo import concise
from rlhf_ray.rewards.functions import RewardError, RewardSum, call_reward_function, reward_arguments
from rlhf_ray.rewards.math import exact_match, last_number
from tests.support import reward_functions


@pytest.mark.parametrize(
    ("text", "number"),
    [("the answer is 42", "42"), ("3 then -7.5.", "-7.5"), ("total: 1,000", "1000"), ("none", None)],
)
def test_last_number(text, number):
    assert last_number(text) == number


def test_exact_match_compares_numbers():
    rewards = exact_match(["q"] * 4, ["so 4", "it is 4.0", "5", "no idea"], ["4", "4", "4", "4"])
    assert rewards == [1.0, 1.0, 0.0, 0.0]


def test_exact_match_needs_labels():
    with pytest.raises(ValueError, match="needs a label for every prompt"):
        exact_match(["q"], ["4"], [None])
    with pytest.raises(ValueError, match="set data.label_key"):
        exact_match(["q"], ["4"], None)


TEXTS = {"prompt": ["Name a cat.", "Name a dog."], "response": ["Tom is a cat", "Rex"], "label": ["Tom", None]}


def call(function, columns=None):
    return call_reward_function(function, function.__name__, reward_arguments(TEXTS, columns or {}), 2).tolist()


def test_a_function_written_with_completions_and_kwargs_gets_the_responses():
    assert call(reward_functions.completion_words, {"difficulty": [2, 3]}) == [4.0, 1.0]


def test_kwargs_receive_every_argument_and_column():
    # prompts, responses, completions, labels, messages, difficulty
    assert call(reward_functions.arguments_seen, {"difficulty": [2, 3]}) == [6.0, 6.0]


def test_a_column_of_the_prompt_rows_is_passed_by_its_name():
    # len("Tom is a cat") * 2, len("Rex") * 3
    assert call(reward_functions.times_difficulty, {"difficulty": [2, 3], "source": ["a", "b"]}) == [24.0, 9.0]


def test_a_function_is_passed_only_the_names_it_takes():
    assert call(concise, {"difficulty": [2, 3]}) == [1.0, pytest.approx(0.75)]


def test_a_parameter_no_argument_fills_is_an_error_naming_it():
    with pytest.raises(RewardError, match="needs_a_rubric: parameter 'rubric' cannot be filled.*columns: difficulty"):
        call(reward_functions.needs_a_rubric, {"difficulty": [2, 3]})


def test_a_column_named_like_an_argument_is_an_error():
    with pytest.raises(RewardError, match="column 'labels' has the name of a reward function argument"):
        call(reward_functions.arguments_seen, {"labels": ["x", "y"]})


def test_the_reward_is_the_weighted_sum_of_the_functions_clipped():
    reward = RewardConfig(
        source="function",
        functions=[{"function": "m:first", "weight": 1.0}, {"function": "m:second", "weight": 0.5, "name": "b"}],
    )
    values = torch.tensor([[1.0, 4.0], [0.0, 2.0], [-3.0, -4.0]])
    assert RewardSum.of(reward).total(values).tolist() == [3.0, 1.0, -5.0]  # 1 + 4/2, 0 + 2/2, -3 - 4/2
    clipped = RewardSum.of(reward.model_copy(update={"clip": 2.0}))
    assert clipped.total(values).tolist() == [2.0, 1.0, -2.0]
    assert RewardSum.of(reward).means(values, "rollout") == {
        "rollout/reward/first": pytest.approx(-2 / 3),
        "rollout/reward/b": pytest.approx(2 / 3),
    }


def test_one_function_is_the_shorthand_of_a_list_of_one():
    [only] = RewardConfig(source="function", function="rlhf_ray.rewards.demo:concise").weighted_functions()
    assert (only.function, only.weight, only.metric_name) == ("rlhf_ray.rewards.demo:concise", 1.0, "concise")
