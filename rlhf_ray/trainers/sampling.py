"""Sampling from a model folder in this process, with the project's rollout engine and no Ray cluster:
what ``rlhf-ray generate``, ``rlhf-ray chat`` and ``rlhf-ray eval`` answer prompts with."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from transformers import AutoConfig, PreTrainedTokenizerBase

from rlhf_ray.config import Config, ConfigError, ConfigProblem
from rlhf_ray.config.device import DeviceProfile, resolve_device
from rlhf_ray.config.loading import apply_override, validate_schema
from rlhf_ray.data.prompts import Prompt, load_prompts
from rlhf_ray.data.records import token_ids
from rlhf_ray.data.rendering import render_prompt
from rlhf_ray.data.samples import Sample
from rlhf_ray.engines.rollout import SamplingSpec, create_rollout_engine
from rlhf_ray.models import load_tokenizer
from rlhf_ray.models.checks import ModelFolder, check_model_folders

RESET, QUIT = "/reset", "/quit"


@dataclass(frozen=True)
class Response:
    prompt: str
    """The prompt as the model saw it (rendered with the chat template when one applies)."""
    text: str
    finish_reason: str
    tokens: int

    def row(self) -> dict[str, str]:
        return {"prompt": self.prompt, "response": self.text, "finish_reason": self.finish_reason}


def sampling_config(model_folder: str, overrides: Sequence[str] = ()) -> Config:
    """The schema's defaults for sampling from ``model_folder`` (checked first), with ``overrides``; where
    they do not say: the tokenizer's chat template when it has one, and prompts up to the model's context
    length less what follows them (``rollout.max_new_tokens``, or a conversation's turns)."""
    folder = _folder_arg(model_folder)
    check_model_folders([folder], tokenizer=folder)
    raw: dict[str, Any] = {"models": {"tiny": None, "policy": {"path": model_folder}}}
    locations = {}
    for override in overrides:
        locations[apply_override(raw, override)] = f"override {override!r}"
    cfg = validate_schema(raw, locations)
    data = raw.setdefault("data", {})
    if "apply_chat_template" not in data:
        data["apply_chat_template"] = load_tokenizer(model_folder, "left").chat_template is not None
    if "max_prompt_length" not in data:
        data["max_prompt_length"] = _prompt_room(model_folder, cfg.rollout.max_continuation_tokens, locations)
    return validate_schema(raw, locations)


def _folder_arg(path: str) -> ModelFolder:
    """A model folder given on the command line, as the checks name it."""
    return ModelFolder("policy", "MODEL_FOLDER", path)


def _prompt_room(model_folder: str, max_new_tokens: int, locations: dict[str, str]) -> int:
    """The longest prompt that leaves ``max_new_tokens`` of the model's context for the response."""
    context = getattr(AutoConfig.from_pretrained(model_folder), "max_position_embeddings", None)
    if context is None:
        return Config().data.max_prompt_length
    if context <= max_new_tokens:
        where = locations.get("rollout.max_new_tokens", "default")
        problem = f"is {max_new_tokens}, which leaves no room for a prompt in the model's {context} positions"
        raise ConfigError([ConfigProblem("rollout.max_new_tokens", problem, where)])
    return context - max_new_tokens


class Sampler:
    """A model folder's rollout engine (``rollout.engine``) and tokenizer, in this process."""

    def __init__(self, cfg: Config, model_folder: str, device: DeviceProfile | None = None):
        device = device or resolve_device(cfg.resources.device, torch.cuda.device_count())
        self.cfg = device.resolved(cfg)
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(model_folder, "left")
        self.engine = create_rollout_engine(model_folder, self.cfg, 0, device)

    def close(self) -> None:
        """Free the engine (its memory, and for vLLM its KV cache) before another one starts."""
        del self.engine
        gc.collect()

    def configured(self) -> SamplingSpec:
        """What ``rollout`` says: its temperature, top-p / top-k, ``samples_per_prompt`` responses each."""
        return replace(SamplingSpec.from_config(self.cfg.rollout, self.cfg.seed), logprobs=False)

    def greedy(self) -> SamplingSpec:
        return replace(self.configured(), n=1, temperature=0.0, top_p=1.0, top_k=-1)

    def samples(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, seeds: Sequence[int] | None = None
    ) -> list[list[Sample]]:
        """``sampling.n`` samples of each prompt, prompt ``i`` seeded ``seeds[i]``, by default
        ``sampling.seed + i * n`` as in training."""
        if seeds is None:
            seeds = [None if sampling.seed is None else sampling.seed + i * sampling.n for i in range(len(prompts))]
        return self.engine.generate(prompts, sampling, seeds)

    def respond(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> list[list[Response]]:
        """Each prompt's ``sampling.n`` responses, decoded."""
        samples = self.samples([p.token_ids for p in prompts], sampling)
        return [[self.response(p.text, s) for s in ss] for p, ss in zip(prompts, samples, strict=True)]

    def response(self, prompt: str, sample: Sample) -> Response:
        text = self.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
        return Response(prompt, text, sample.finish_reason, len(sample.token_ids))


def chat(sampler: Sampler, lines: Iterable[str], say: Callable[[str], None]) -> None:
    """A conversation with the model: each line of ``lines`` is a user turn, answered through ``say`` with
    the conversation so far as the prompt. ``/reset`` starts over, ``/quit`` (or the end of ``lines``)
    ends it. Without the chat template the conversation is its turns' plain text, one per line."""
    data = sampler.cfg.data
    messages: list[dict[str, str]] = []
    sampling = replace(sampler.configured(), n=1)
    for turn, line in enumerate(lines):
        text = line.strip()
        if text == QUIT:
            return
        if text == RESET:
            messages = []
            say("(conversation reset)")
            continue
        if not text:
            continue
        conversation = [*messages, {"role": "user", "content": text}]
        content = conversation if data.apply_chat_template else "\n".join(m["content"] for m in conversation)
        prompt = render_prompt(sampler.tokenizer, content, "chat", data.apply_chat_template)
        ids = token_ids(sampler.tokenizer, prompt)
        if len(ids) > data.max_prompt_length:
            say(f"(the conversation is {len(ids)} tokens, over {data.max_prompt_length}: /reset to start over)")
            continue
        seed = None if sampling.seed is None else sampling.seed + turn
        [[sample]] = sampler.samples([ids], replace(sampling, seed=seed))
        answer = sampler.response(prompt, sample).text
        say(answer)
        messages = [*conversation, {"role": "assistant", "content": answer}]


def load_prompt_file(path: str, cfg: Config) -> list[Prompt]:
    """The prompts of ``path``, rendered and tokenised for the model of ``cfg`` (``models.policy.path``)."""
    tokenizer = load_tokenizer(cfg.models.policy.path, "left")
    return load_prompts(path, cfg.data, tokenizer, cfg.seed).items
