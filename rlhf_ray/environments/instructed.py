"""The multi-turn CPU demo: a simulated user who, after the first answer, asks the policy to answer in
digits only or in words only from then on, then only says "Go on."; the reward is how well each later
answer keeps to it.

A conversation (``rollout.max_turns: 3``) on the built-in synthetic prompts:

    user:      Tell me about cats.
    assistant: ...                                    no reward
    user:      From now on, answer in digits only.    (or "... in words only.", drawn at random)
    assistant: ...                                    turn reward (the user's): keeps_to_instruction
    user:      Go on.
    assistant: ...                                    reward (follows_instruction, over the whole
                                                      conversation): keeps_to_instruction

The last request ("Go on.") does not say what was asked: only the message two turns back does, and
either is asked for about as often, so a policy that answers the same way whatever it was told earns
about 0.5 on average; one that keeps to what it was told earns up to 1.

A random policy follows no instruction, so the demo first fine-tunes it (SFT) on chats
(``demonstrations``) whose answer right after the instruction keeps to it, but whose answer after "Go
on." does only half the time, as a careless demonstrator's would: supervised learning copies that
carelessness, and RL, rewarded over the whole conversation, learns to keep to the instruction.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rlhf_ray.data.synthetic import SUBJECTS, synthetic_prompts
from rlhf_ray.environments import Conversation, Message, Reply

INSTRUCTIONS: dict[str, Callable[[str], bool]] = {
    "From now on, answer in digits only.": str.isdigit,
    "From now on, answer in words only.": str.isalpha,
}
GO_ON = "Go on."


class InstructingUser:
    """After the policy's first answer, asks for digits or for words (drawn with the conversation's seed,
    so nothing the policy says changes which); after its second, says ``GO_ON`` and rewards that
    answer with ``turn_reward`` times how well it keeps to the instruction; after its third, ends the
    conversation (the run's reward function judges the last answer)."""

    def __init__(self, turn_reward: float = 1.0):
        self.turn_reward = turn_reward

    def reply(self, conversation: Conversation) -> Reply:
        if conversation.turn == 1:
            return Reply(random.Random(conversation.seed).choice(list(INSTRUCTIONS)))
        if conversation.turn == 2:
            return Reply(GO_ON, self.turn_reward * keeps_to_instruction(conversation.messages))
        return Reply(None)


def follows_instruction(messages: Sequence[list[Message]]) -> list[float]:
    """How well each conversation's last answer keeps to the user's instruction."""
    return [keeps_to_instruction(m) for m in messages]


def keeps_to_instruction(messages: list[Message]) -> float:
    """The share of the last answer's letters and digits that are of the kind the user asked for; 0 when
    it has none, or the user asked for neither."""
    asked = next(
        (INSTRUCTIONS[m["content"]] for m in messages if m["role"] == "user" and m["content"] in INSTRUCTIONS), None
    )
    characters = [c for c in messages[-1]["content"] if c.isalnum()]
    if asked is None or not characters:
        return 0.0
    return sum(map(asked, characters)) / len(characters)


_ADJECTIVES = "warm cold bright dark happy slow clever gentle".split()


def demonstrations(count: int, seed: int) -> list[dict[str, list[Message]]]:
    """SFT rows of ``count`` three-turn chats, the same for the same seed: a synthetic prompt and a short
    answer in words, one of the ``INSTRUCTIONS`` and an answer that keeps to it, then ``GO_ON`` and an
    answer in digits or in words at random, as often keeping to the instruction as not. Each chat makes
    two rows, as SFT learns a row's last answer: the chat up to the answer to the instruction, and the
    whole chat."""
    rng = random.Random(seed)

    def answer(kind: Callable[[str], bool], subject: str) -> str:
        if kind is str.isdigit:
            return " ".join(str(rng.randint(0, 99)) for _ in range(rng.randint(2, 4)))
        return " ".join([*rng.sample(_ADJECTIVES, rng.randint(1, 3)), subject])

    chats = []
    for prompt in synthetic_prompts(seed, count):
        subject = next(word for word in SUBJECTS if word in prompt)
        instruction = rng.choice(list(INSTRUCTIONS))
        turns = [
            prompt,
            f"{answer(str.isalpha, subject).capitalize()}.",
            instruction,
            answer(INSTRUCTIONS[instruction], subject),
            GO_ON,
            answer(rng.choice(list(INSTRUCTIONS.values())), subject),
        ]
        messages = [{"role": r, "content": c} for r, c in zip(["user", "assistant"] * 3, turns, strict=True)]
        chats += [{"messages": messages[:4]}, {"messages": messages}]
    return chats


if __name__ == "__main__":
    # python -m rlhf_ray.environments.instructed OUT.jsonl: the demo's SFT rows (configs/data/instructed_chats.jsonl).
    Path(sys.argv[1]).write_text("".join(json.dumps(chat) + "\n" for chat in demonstrations(256, 0)))
