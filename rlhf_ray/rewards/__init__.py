"""Rule-based reward functions, named in a config as ``reward.function: module:function``.

A reward function takes ``(prompts, responses, labels)`` (lists of equal length; ``labels`` holds
``None`` where a prompt has no label) and returns one float per response.
"""
