"""What a labeller judges: an item is a prompt and K responses sampled from the model folder, a pure
function of its index (which prompt, which seed), so a restarted app shows an unanswered item again as
it was."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from rlhf_ray.config import Config
from rlhf_ray.data.prompts import synthetic_rows
from rlhf_ray.data.records import DataError, load_rows, read_records, require_text, token_ids
from rlhf_ray.data.rendering import render_prompt
from rlhf_ray.trainers.sampling import Sampler


@dataclass(frozen=True)
class LabelPrompt:
    content: str | list[dict[str, str]]
    """The prompt as its row holds it (a string or chat messages): what the judgement row keeps."""
    token_ids: list[int]
    """The prompt rendered as the model sees it."""


@dataclass(frozen=True)
class LabelItem:
    index: int
    prompt: str | list[dict[str, str]]
    responses: list[str]
    seed: int
    """The seed the responses were sampled with."""

    @property
    def digest(self) -> str:
        """A fingerprint of what the labeller saw: a judgement of other responses is refused."""
        return hashlib.sha256(json.dumps([self.prompt, self.responses]).encode()).hexdigest()[:16]

    def shown_prompt(self) -> str:
        """The prompt as text for the page: a conversation as ``role: content`` lines."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{message['role']}: {message['content']}" for message in self.prompt)


def load_label_prompts(cfg: Config, tokenizer: PreTrainedTokenizerBase) -> list[LabelPrompt]:
    """``feedback.prompts_path`` (else ``data.train_path``, else the synthetic prompts), read and checked
    as ``data`` says."""
    path = cfg.feedback.prompts_path or cfg.data.train_path
    rows = read_records(path) if path is not None else synthetic_rows(cfg.seed)
    field = "feedback.prompts_path" if cfg.feedback.prompts_path else "data.train_path"
    return load_rows(
        rows, lambda row: _prompt(row, cfg, tokenizer), cfg.data.strict, path or "the synthetic prompt set", field
    ).items


def _prompt(row: dict, cfg: Config, tokenizer: PreTrainedTokenizerBase) -> LabelPrompt:
    data = cfg.data
    content = require_text(row, data.prompt_key)
    ids = token_ids(tokenizer, render_prompt(tokenizer, content, data.prompt_key, data.apply_chat_template))
    if len(ids) > data.max_prompt_length:
        raise DataError(f"too long: {len(ids)} tokens, data.max_prompt_length is {data.max_prompt_length}")
    return LabelPrompt(content, ids)


class ItemMaker:
    """Items by index: item i asks prompt ``order[i mod P]`` (a seeded shuffle of the P prompts) for K
    responses seeded ``seed + i * K``, sampled by the model folder's rollout engine."""

    def __init__(self, sampler: Sampler, prompts: Sequence[LabelPrompt], seed: int):
        self.sampler = sampler
        self.prompts = prompts
        self.seed = seed
        self.order = random.Random(seed).sample(range(len(prompts)), len(prompts))
        self.sampling = sampler.configured()  # rollout.samples_per_prompt is feedback.responses_per_prompt

    def seed_of(self, index: int) -> int:
        return self.seed + index * self.sampling.n

    def make(self, indices: Sequence[int]) -> list[LabelItem]:
        """The items ``indices``, their responses sampled in one batch."""
        prompts = [self.prompts[self.order[index % len(self.prompts)]] for index in indices]
        seeds = [self.seed_of(index) for index in indices]
        samples = self.sampler.samples([p.token_ids for p in prompts], self.sampling, seeds)
        return [
            LabelItem(index, prompt.content, [self._text(sample.token_ids) for sample in item_samples], seed)
            for index, prompt, seed, item_samples in zip(indices, prompts, seeds, samples, strict=True)
        ]

    def _text(self, ids: Sequence[int]) -> str:
        return self.sampler.tokenizer.decode(ids, skip_special_tokens=True)
