"""Simulated human labellers: demonstrations and preference pairs for the synthetic prompts, judged
by a hidden gold reward, written as the JSONL files the SFT and reward-model stages read.

A demonstration answers a prompt with a sentence about its subject, its adjectives drawn evenly
from the cheerful and the gloomy ones: the demonstrators have no taste, so SFT learns to answer
but not what the labellers prefer. A preference pair is two such answers to one prompt whose gold
rewards differ; the one with the higher gold reward is chosen, then a labeller swaps the two with
probability ``noise``. Held-out pairs are noise-free, so a reward model's accuracy on them measures
how well it learned the gold preference.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlhf_ray.config.schema import LabellerConfig
from rlhf_ray.data.synthetic import SUBJECTS, synthetic_prompts
from rlhf_ray.rewards.functions import call_reward_function, import_reward_function, reward_arguments
from rlhf_ray.rewards.gold import CHEERFUL_WORDS, GLOOMY_WORDS

EVAL_DEMONSTRATIONS = 64
EVAL_PAIRS = 128
MARKER = "labels.json"
_ADJECTIVES = sorted(CHEERFUL_WORDS | GLOOMY_WORDS)
_VERBS = "sees finds likes visits follows remembers".split()
_OBJECTS = "river garden house song morning city forest letter".split()


@dataclass(frozen=True)
class LabelFiles:
    sft_train: Path
    sft_eval: Path
    preferences_train: Path
    preferences_eval: Path

    @classmethod
    def under(cls, folder: str | Path) -> LabelFiles:
        folder = Path(folder)
        return cls(
            *(folder / f"{name}.jsonl" for name in ("sft_train", "sft_eval", "preferences_train", "preferences_eval"))
        )


def simulate_labels(labeller: LabellerConfig, seed: int) -> LabelFiles:
    """Write the labellers' files under ``labeller.output_dir``, or reuse them when a previous run
    with the same settings finished writing them."""
    folder = Path(labeller.output_dir)
    files = LabelFiles.under(folder)
    settings = {"labeller": labeller.model_dump(mode="json"), "seed": seed}
    marker = folder / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return files
    gold = _judge(labeller.gold_function)
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    prompts = synthetic_prompts(seed + 7919, 4096)
    _write(files.sft_train, [_demonstration(rng, rng.choice(prompts)) for _ in range(labeller.demonstrations)])
    _write(files.sft_eval, [_demonstration(rng, rng.choice(prompts)) for _ in range(EVAL_DEMONSTRATIONS)])
    _write(
        files.preferences_train, [_pair(rng, rng.choice(prompts), gold, labeller.noise) for _ in range(labeller.pairs)]
    )
    _write(files.preferences_eval, [_pair(rng, rng.choice(prompts), gold, 0.0) for _ in range(EVAL_PAIRS)])
    marker.write_text(json.dumps(settings))
    return files


def _answer(rng: random.Random, prompt: str) -> str:
    subject = next(word for word in SUBJECTS if word in prompt)
    first, second = rng.choice(_ADJECTIVES), rng.choice(_ADJECTIVES)
    return f"The {first} {subject} {rng.choice(_VERBS)} the {second} {rng.choice(_OBJECTS)}."


def _demonstration(rng: random.Random, prompt: str) -> dict[str, str]:
    return {"prompt": prompt, "response": _answer(rng, prompt)}


def _judge(spec: str) -> Callable[[str, list[str]], list[float]]:
    """The gold rewards of responses to a prompt, by the function ``spec`` (called as a reward function is)."""
    function = import_reward_function(spec)

    def judge(prompt: str, responses: list[str]) -> list[float]:
        arguments = reward_arguments({"prompt": [prompt] * len(responses), "response": responses}, {})
        return call_reward_function(function, spec, arguments, len(responses)).tolist()

    return judge


def _pair(rng: random.Random, prompt: str, gold: Callable[[str, list[str]], list[float]], noise: float) -> dict:
    while True:
        first, second = _answer(rng, prompt), _answer(rng, prompt)
        first_gold, second_gold = gold(prompt, [first, second])
        if first_gold != second_gold:
            break
    chosen, rejected = (first, second) if first_gold > second_gold else (second, first)
    if rng.random() < noise:
        chosen, rejected = rejected, chosen
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _write(path: Path, rows: list[dict]) -> None:
    staging = path.with_name(path.name + ".partial")
    staging.write_text("".join(json.dumps(row) + "\n" for row in rows))
    staging.rename(path)
