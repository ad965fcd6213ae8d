"""What the pipeline did, shown at its end: a few prompts answered greedily by the SFT policy and by the PPO
policy side by side, each answer with its gold and learned reward, and the PPO run's gold and learned reward
over its steps as a PNG (``tracking.plots.plot_gold_vs_learned``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import resolve_device
from rlhf_ray.data.prompts import Prompt
from rlhf_ray.data.records import read_records, token_ids
from rlhf_ray.data.rendering import render_prompt
from rlhf_ray.data.simulated import simulate_labels
from rlhf_ray.data.synthetic import synthetic_prompts
from rlhf_ray.models import load_tokenizer
from rlhf_ray.models.paths import ModelPaths
from rlhf_ray.tracking.plots import PlotError, plot_gold_vs_learned
from rlhf_ray.trainers.evaluate import Answers, Judge, answer_prompts
from rlhf_ray.trainers.pipeline import PipelineResult

REPORT_PROMPTS = 4
ANSWER_WIDTH = 60
"""Characters of an answer the table shows; a longer one is cut and ends in "..."."""


@dataclass(frozen=True)
class JudgedAnswer:
    text: str
    gold: float | None
    """None without ``reward.gold_function``."""
    learned: float


@dataclass(frozen=True)
class SideBySide:
    prompt: str
    sft: JudgedAnswer
    ppo: JudgedAnswer


def pipeline_report(cfg: Config, result: PipelineResult) -> str | None:
    """The SFT and the PPO policy's answers side by side, and where the gold-vs-learned plot is; None when
    this run trained no PPO policy, or no reward model to compare the gold reward with."""
    ppo = result.ppo
    if ppo is None or ppo.export_dir is None or result.reward_model_dir is None:
        return None
    source, texts = report_prompts(cfg, REPORT_PROMPTS)
    rows = side_by_side(cfg, texts, result.sft_model, ppo.export_dir, result.reward_model_dir)
    lines = [
        f"SFT and PPO policy side by side, greedy answers to {len(rows)} prompts of {source}",
        f"rewards: gold {cfg.reward.gold_function or '(none: reward.gold_function is not set)'}, "
        f"learned {result.reward_model_dir}",
        side_by_side_table(rows),
    ]
    if ppo.metrics_file is not None:
        try:
            lines.append(f"gold vs learned reward per step: {plot_gold_vs_learned(ppo.metrics_file)}")
        except PlotError as exc:
            lines.append(f"gold vs learned reward per step: not plotted ({exc})")
    return "\n".join(lines)


def side_by_side(
    cfg: Config, texts: Sequence[str], sft_model: Path, ppo_policy: Path, reward_model: Path
) -> list[SideBySide]:
    """Each prompt of ``texts`` answered greedily by both policies (the ``hf`` engine, in this process) and
    judged by the reward model and the gold function."""
    device = resolve_device(cfg.resources.device, torch.cuda.device_count())
    cfg = device.resolved(cfg)
    cfg = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"engine": "hf"})})
    prompts = _rendered(cfg, str(sft_model), texts)  # the PPO policy has the SFT model's tokenizer
    judge = Judge(cfg, ModelPaths({"reward": str(reward_model)}), device)
    sft, ppo = (
        _judged(judge, prompts, answer_prompts(cfg, device, str(policy), prompts, None))
        for policy in (sft_model, ppo_policy)
    )
    return [SideBySide(*row) for row in zip(texts, sft, ppo, strict=True)]


def report_prompts(cfg: Config, count: int) -> tuple[str, list[str]]:
    """Where the report's prompts come from, and its first ``count`` distinct prompts: the PPO stage's
    held-out prompts (``data.eval_path``), else the simulated labellers' held-out demonstrations, else the
    PPO stage's training prompts."""
    source, texts = _prompt_texts(cfg)
    distinct: list[str] = []
    for text in texts:
        if text not in distinct:
            distinct.append(text)
        if len(distinct) == count:
            break
    return source, distinct


def _prompt_texts(cfg: Config) -> tuple[str, Iterator[str]]:
    if cfg.data.eval_path is not None:
        path, key = cfg.data.eval_path, cfg.data.prompt_key
    elif cfg.labeller is not None:
        path, key = str(simulate_labels(cfg.labeller, cfg.seed).sft_eval), "prompt"
    elif cfg.data.train_path is not None:
        path, key = cfg.data.train_path, cfg.data.prompt_key
    else:
        return "the synthetic prompt set", iter(synthetic_prompts(cfg.seed))
    return path, (row[key] for _, row in read_records(path) if isinstance(row.get(key), str))


def _rendered(cfg: Config, model_folder: str, texts: Sequence[str]) -> list[Prompt]:
    """``texts`` as the policy is prompted with them (``data.apply_chat_template``)."""
    tokenizer = load_tokenizer(model_folder, "left")
    rendered = [render_prompt(tokenizer, text, cfg.data.prompt_key, cfg.data.apply_chat_template) for text in texts]
    return [Prompt(token_ids(tokenizer, text), text, None) for text in rendered]


def _judged(judge: Judge, prompts: list[Prompt], answers: Answers) -> list[JudgedAnswer]:
    rewards = judge.rewards(prompts, answers)
    gold = [None] * len(prompts) if rewards.gold is None else rewards.gold[:, 0].tolist()
    texts = [answers.tokenizer.decode(s.token_ids, skip_special_tokens=True) for [s] in answers.samples]
    return [JudgedAnswer(t, g, r) for t, g, r in zip(texts, gold, rewards.values[:, 0].tolist(), strict=True)]


def side_by_side_table(rows: Sequence[SideBySide]) -> str:
    """Two lines per prompt, the SFT policy's answer above the PPO policy's, with their rewards."""
    width = max([len("prompt"), *(len(row.prompt) for row in rows)])
    lines = [_line(width, "prompt", "policy", "gold", "learned", "answer")]
    for row in rows:
        lines.append(_line(width, row.prompt, "SFT", *_cells(row.sft)))
        lines.append(_line(width, "", "PPO", *_cells(row.ppo)))
    return "\n".join(lines)


def _cells(answer: JudgedAnswer) -> tuple[str, str, str]:
    """The gold reward, the learned reward and the answer on one line, cut to ``ANSWER_WIDTH``."""
    gold = "-" if answer.gold is None else f"{answer.gold:.2f}"
    text = " ".join(answer.text.split())
    shown = text if len(text) <= ANSWER_WIDTH else text[: ANSWER_WIDTH - 3] + "..."
    return gold, f"{answer.learned:.2f}", shown


def _line(width: int, prompt: str, policy: str, gold: str, learned: str, answer: str) -> str:
    return f"{prompt:<{width}}  {policy:<6} {gold:>6} {learned:>8}  {answer}".rstrip()
