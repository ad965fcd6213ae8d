"""Multi-turn rollouts: the policy answers, the environment replies, and so on, up to
``rollout.max_turns`` policy turns or until the environment ends the conversation.

Every turn is one call to the engines with all the conversations still going (those that ended free
their place), each continuing from its own token ids so far: the engines reuse the KV cache of that
prefix (vLLM's prefix caching). A conversation's token ids are the prompt's, then the ids each policy
turn sampled and the ids of each environment message rendered with the chat template
(``render_reply``), concatenated: the sequence the trainer scores is the one the engines produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from transformers import PreTrainedTokenizerBase

from rlhf_ray.config.schema import RolloutConfig
from rlhf_ray.data.prompts import Prompt
from rlhf_ray.data.records import token_ids
from rlhf_ray.data.rendering import render_reply
from rlhf_ray.data.samples import Sample
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.environments import Conversation, Environment, Reply, as_message, load_environment
from rlhf_ray.rewards.functions import is_finite_number
from rlhf_ray.workers.rollout_group import Generate

_TURN_SEED_STRIDE = 2**32
"""Turn t's seeds are the first turn's plus t strides: apart from every step's first-turn seeds."""


class EnvironmentFailure(RuntimeError):
    """The environment failed, or replied with something a conversation cannot take."""


@dataclass
class _Dialogue:
    """One conversation under way: its tokens after the prompt, who produced each, its messages."""

    prompt: Prompt
    messages: list[dict[str, str]]
    seed: int
    token_ids: list[int] = field(default_factory=list)
    policy_mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = field(default_factory=list)
    turn_rewards: dict[int, float] = field(default_factory=dict)
    finish_reason: str = "stop"
    """How the latest policy turn ended."""
    truncated: bool = False
    """Whether any policy turn was cut at ``max_new_tokens``."""

    def answer(self, sample: Sample, tokenizer: PreTrainedTokenizerBase) -> None:
        self.token_ids += sample.token_ids
        self.policy_mask += [1] * len(sample.token_ids)
        self.logprobs = None if self.logprobs is None or sample.logprobs is None else self.logprobs + sample.logprobs
        self.finish_reason = sample.finish_reason
        self.truncated |= sample.finish_reason == "length"
        content = tokenizer.decode(sample.token_ids, skip_special_tokens=True)
        self.messages = [*self.messages, {"role": "assistant", "content": content}]

    def hear(self, message: dict[str, str], ids: list[int]) -> None:
        self.token_ids += ids
        self.policy_mask += [0] * len(ids)
        if self.logprobs is not None:
            self.logprobs += [0.0] * len(ids)
        self.messages = [*self.messages, message]

    def sample(self) -> Sample:
        """The conversation as one sample, ended by "length" when any of its turns was cut."""
        finish = "length" if self.truncated else "stop"
        return Sample(self.token_ids, finish, self.logprobs, self.policy_mask, self.turn_rewards, self.messages)


class Conversations:
    """Rolls out conversations between the policy (through ``generate``) and the environment."""

    def __init__(self, rollout: RolloutConfig, tokenizer: PreTrainedTokenizerBase):
        self.max_turns = rollout.max_turns
        self.max_message_tokens = rollout.max_environment_tokens
        self.spec = rollout.environment
        self.environment: Environment = load_environment(rollout.environment, rollout.environment_args)
        self.tokenizer = tokenizer

    def __call__(self, prompts: Sequence[Prompt], sampling: SamplingSpec, generate: Generate) -> list[list[Sample]]:
        """``sampling.n`` conversations per prompt, each a sample (``Sample.policy_mask`` marks the
        policy's tokens), in prompt order. The first turn samples ``n`` answers to each prompt; each later
        turn samples one continuation of each conversation still going, seeded apart from the others."""
        first = generate([p.token_ids for p in prompts], sampling)
        base = 0 if sampling.seed is None else sampling.seed
        rows = [prompt for prompt, samples in zip(prompts, first, strict=True) for _ in samples]
        dialogues = [_Dialogue(prompt, list(prompt.messages), base + i) for i, prompt in enumerate(rows)]
        for dialogue, sample in zip(dialogues, (s for samples in first for s in samples), strict=True):
            dialogue.answer(sample, self.tokenizer)
        going, turn = dialogues, 1
        while going := [d for d in going if self._hear_environment(d, turn)]:
            seed = None if sampling.seed is None else sampling.seed + turn * _TURN_SEED_STRIDE
            answers = generate([d.prompt.token_ids + d.token_ids for d in going], replace(sampling, n=1, seed=seed))
            for dialogue, [sample] in zip(going, answers, strict=True):
                dialogue.answer(sample, self.tokenizer)
            turn += 1
        per_prompt = [len(samples) for samples in first]
        samples = [d.sample() for d in dialogues]
        starts = [sum(per_prompt[:i]) for i in range(len(per_prompt))]
        return [samples[start : start + n] for start, n in zip(starts, per_prompt, strict=True)]

    def _hear_environment(self, dialogue: _Dialogue, turn: int) -> bool:
        """Ask the environment about ``dialogue`` after the policy's ``turn``-th answer: record its reward
        for that turn, and add its message unless the conversation ends; whether it goes on."""
        row = {"label": dialogue.prompt.label, **dialogue.prompt.columns}
        try:
            reply = self.environment.reply(Conversation(list(dialogue.messages), row, turn, dialogue.seed))
            if not isinstance(reply, Reply):
                raise TypeError(f"reply() returned {reply!r}, not a Reply")
            goes_on = reply.message is not None and turn < self.max_turns
            if goes_on:
                message = as_message(reply.message)
                last = dialogue.token_ids[-1:] if dialogue.finish_reason == "stop" else []
                text = render_reply(self.tokenizer, dialogue.messages, message, self.tokenizer.decode(last))
        except Exception as exc:  # whatever the user's environment (or its message in the template) raises
            raise EnvironmentFailure(f"environment {self.spec} failed at turn {turn}: {exc!r}") from exc
        if reply.reward is not None:
            if not is_finite_number(reply.reward):
                raise EnvironmentFailure(f"environment {self.spec} gave turn {turn} the reward {reply.reward!r}")
            dialogue.turn_rewards[len(dialogue.token_ids) - 1] = float(reply.reward)
        if not goes_on:
            return False
        ids = token_ids(self.tokenizer, text)
        if len(ids) > self.max_message_tokens:
            raise EnvironmentFailure(
                f"environment {self.spec} replied at turn {turn} with {len(ids)} tokens, over "
                f"rollout.max_environment_tokens = {self.max_message_tokens}: {message['content'][:80]!r}"
            )
        dialogue.hear(message, ids)
        return True


def single_turn(prompts: Sequence[Prompt], sampling: SamplingSpec, generate: Generate) -> list[list[Sample]]:
    """A rollout of one answer per sample."""
    return generate([p.token_ids for p in prompts], sampling)


Rollouts = Callable[[Sequence[Prompt], SamplingSpec, Generate], list[list[Sample]]]


def rollouts_for(rollout: RolloutConfig, tokenizer: PreTrainedTokenizerBase) -> Rollouts:
    """How the run rolls out: single answers, or conversations with ``rollout.environment``."""
    return single_turn if rollout.environment is None else Conversations(rollout, tokenizer)
