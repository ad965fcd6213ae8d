"""Reward functions for the reward-role tests, named in configs as ``tests.support.reward_functions:NAME``."""


def length(prompts, responses, labels):
    return [float(len(response)) for response in responses]


def nan_for_short(prompts, responses, labels):
    return [float("nan") if len(response) < 3 else 1.0 for response in responses]


def one_too_few(prompts, responses, labels):
    return [1.0] * (len(responses) - 1)


def crashes(prompts, responses, labels):
    raise KeyError("missing field")


def completion_words(prompts, completions, **kwargs):
    """TRL's convention: the completions by that name, everything else as keyword arguments."""
    return [float(len(completion.split())) for completion in completions]


def arguments_seen(**kwargs):
    """The number of arguments it was passed, for every sample."""
    return [float(len(kwargs))] * len(kwargs["responses"])


def times_difficulty(responses, difficulty):
    """A column of the prompt rows by its name: the response's length times the row's ``difficulty``."""
    return [float(len(response) * level) for response, level in zip(responses, difficulty, strict=True)]


def needs_a_rubric(prompts, responses, rubric):
    return [0.0] * len(responses)


def positional_only(prompts, responses, /):
    return [0.0] * len(responses)


def marked_pass(prompts, responses, labels):
    """1 for every response to a prompt that says PASS, else 0: the prompts passed are known in advance."""
    return [float("PASS" in prompt) for prompt in prompts]
