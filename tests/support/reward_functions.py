"""Reward functions for the reward-role tests, named in configs as ``tests.support.reward_functions:NAME``."""


def length(prompts, responses, labels):
    return [float(len(response)) for response in responses]


def nan_for_short(prompts, responses, labels):
    return [float("nan") if len(response) < 3 else 1.0 for response in responses]


def one_too_few(prompts, responses, labels):
    return [1.0] * (len(responses) - 1)


def crashes(prompts, responses, labels):
    raise KeyError("missing field")
