"""Rule-based reward functions."""

import pytest

from rlhf_ray.rewards.math import exact_match, last_number


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
