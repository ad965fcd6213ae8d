"""Environments: what answers the policy in a multi-turn rollout (a simulated user, a tool).

``rollout.environment`` names a class as ``module:Class``; the run builds one instance with
``rollout.environment_args`` as keyword arguments and asks it, after each policy turn, for its reply:

    class MyUser:
        def __init__(self, **args): ...
        def reply(self, conversation: Conversation) -> Reply: ...

``conversation.messages`` is the chat so far (the prompt row's messages, then the policy's and the
environment's turns, each ``{"role", "content"}``), ending with the policy's latest answer;
``conversation.row`` is the prompt row (its label and other columns); ``conversation.turn`` counts the
policy's turns so far; ``conversation.seed`` seeds whatever the environment draws at random. The reply
is the next message (a string, said by the user, or a message dict with its own role), or None to end
the conversation, and optionally a reward for the policy's turn just taken. The policy speaks at most
``rollout.max_turns`` times; the environment is not asked for a message after the last of them, only
for that turn's reward.

``reply`` is called from the driver, for many conversations in turn, and again if a step is replayed
after a failure: it must decide from its arguments alone (any randomness seeded by ``conversation.seed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rlhf_ray.config.plugins import import_object

Message = dict[str, str]


@dataclass(frozen=True)
class Conversation:
    messages: list[Message]
    """The chat so far, ending with the policy's latest answer."""
    row: dict[str, Any] = field(default_factory=dict)
    """The prompt row's label (``label``) and other columns."""
    turn: int = 1
    """The policy's turns so far (1 after its first answer)."""
    seed: int = 0
    """For the environment's random draws: the same for every turn of a conversation, and for the same
    conversation of the same step when it is replayed, whatever the policy says."""


@dataclass(frozen=True)
class Reply:
    message: str | Message | None
    """The next message (a string is the user's), or None: the conversation ends."""
    reward: float | None = None
    """A reward for the policy's turn just taken, on that turn's last token (None: none)."""


class Environment(Protocol):
    def reply(self, conversation: Conversation) -> Reply: ...


def load_environment(spec: str, args: dict[str, Any]) -> Environment:
    """An instance of the ``module:Class`` ``spec``, built with ``args``."""
    return import_object(spec)(**args)


def as_message(message: str | Message) -> Message:
    """A reply's message as ``{"role", "content"}`` (a string is the user's)."""
    if isinstance(message, str):
        return {"role": "user", "content": message}
    if not isinstance(message, dict) or not isinstance(message.get("content"), str) or "role" not in message:
        raise TypeError(f"an environment's message is a string or a {{role, content}} dict, not {message!r}")
    return message
