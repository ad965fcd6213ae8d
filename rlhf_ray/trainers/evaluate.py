"""``rlhf-ray eval``: a model's responses to held-out prompts, judged in this process by the experiment's
reward (the reward role's own worker: a reward model or the reward functions) and its gold function; win
rate against a baseline model's responses, and pass@k over sampled responses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from rlhf_ray.algorithms.evaluation import mean_pass_at_k, pass_at_k_values, win_rate
from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile, resolve_device
from rlhf_ray.config.plugins import import_object
from rlhf_ray.config.schema.roles import ROLE_SPECS
from rlhf_ray.data import SequenceBatch
from rlhf_ray.data.prompts import Prompt, load_prompts
from rlhf_ray.data.records import DataError
from rlhf_ray.data.samples import Sample, batch_from_samples
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.models import load_tokenizer
from rlhf_ray.models.checks import ModelFolder, check_model_folders
from rlhf_ray.models.paths import ModelPaths, model_folders
from rlhf_ray.rewards.functions import call_reward_function, import_reward_function, reward_arguments
from rlhf_ray.rewards.http import check_reward_server
from rlhf_ray.trainers.sampling import Sampler
from rlhf_ray.workers.groups import setup_arguments


@dataclass(frozen=True)
class EvalRequest:
    prompts: str | None = None
    """A prompts file; None: ``data.eval_path``."""
    model: str | None = None
    """The model folder judged; None: the config's policy."""
    baseline: str | None = None
    """A model folder to compare with (win rate); None: no comparison."""
    samples: int | None = None
    """None: one greedy response per prompt. k: k responses sampled as ``rollout`` says, for pass@k."""
    pass_threshold: float = 0.5
    """A response passes when its reward exceeds this."""


@dataclass(frozen=True)
class ModelScores:
    folder: str
    reward_mean: float
    gold_reward: float | None
    response_length: float
    """Mean tokens per response."""
    pass_at_k: dict[int, float] | None
    """With sampled responses: pass@k for k = 1, the powers of two below their number, and their number."""


@dataclass(frozen=True)
class EvalReport:
    prompts_file: str
    prompts: int
    samples: int
    decoding: str
    model: ModelScores
    baseline: ModelScores | None
    win_rate: float | None
    pass_threshold: float

    def summary(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """The report as a few aligned lines."""
        columns = [self.model] if self.baseline is None else [self.model, self.baseline]
        rows = [("", ["model", "baseline"][: len(columns)])]
        rows.append(("reward_mean", [f"{c.reward_mean:.4f}" for c in columns]))
        if self.model.gold_reward is not None:
            rows.append(("gold_reward", [f"{c.gold_reward:.4f}" for c in columns]))
        rows.append(("response_length", [f"{c.response_length:.1f}" for c in columns]))
        if self.win_rate is not None:
            rows.append(("win_rate", [f"{self.win_rate:.4f}"]))
        for k in self.model.pass_at_k or {}:
            rows.append((f"pass@{k}", [f"{c.pass_at_k[k]:.4f}" for c in columns]))
        answers = "1 greedy response" if self.decoding == "greedy" else f"{self.samples} responses at {self.decoding}"
        heading = f"{self.prompts} prompts from {self.prompts_file}, {answers} each"
        return "\n".join([heading, *(f"{name:<16}" + "".join(f"{v:>10}" for v in values) for name, values in rows)])


@dataclass
class Answers:
    samples: list[list[Sample]]
    """Each prompt's ``sampling.n`` samples."""
    tokenizer: Any
    sampling: SamplingSpec


@dataclass(frozen=True)
class Rewards:
    values: torch.Tensor
    """[P, n] each sample's reward."""
    gold: torch.Tensor | None
    """[P, n] each sample's gold reward (None without ``reward.gold_function``)."""
    response_length: float


def evaluate(cfg: Config, request: EvalRequest) -> EvalReport:
    """Answer the held-out prompts with the model (and the baseline), and judge the responses."""
    device = resolve_device(cfg.resources.device, torch.cuda.device_count())
    cfg = device.resolved(cfg)
    paths = model_folders(cfg)
    model = request.model or paths.policy
    _check_folders(model, request.baseline, paths.reward)
    check_reward_server(cfg.reward)
    prompts_file = request.prompts or cfg.data.eval_path
    if prompts_file is None:
        raise DataError("data.eval_path: not set; set it or pass --prompts FILE")
    prompts = load_prompts(prompts_file, cfg.data, load_tokenizer(model, "left", role="model"), cfg.seed).items
    judge = Judge(cfg, paths, device)
    responses = answer_prompts(cfg, device, model, prompts, request.samples)
    rewards = judge.rewards(prompts, responses)
    baseline_rewards = None
    if request.baseline is not None:
        baseline_responses = answer_prompts(cfg, device, request.baseline, prompts, request.samples)
        baseline_rewards = judge.rewards(prompts, baseline_responses)
    return EvalReport(
        prompts_file=prompts_file,
        prompts=len(prompts),
        samples=request.samples or 1,
        decoding="greedy" if request.samples is None else f"temperature {cfg.rollout.temperature:g}",
        model=_scores(model, rewards, request),
        baseline=None if baseline_rewards is None else _scores(request.baseline, baseline_rewards, request),
        win_rate=None if baseline_rewards is None else win_rate(_per_prompt(rewards), _per_prompt(baseline_rewards)),
        pass_threshold=request.pass_threshold,
    )


def _in_this_process(cfg: Config) -> Config:
    """``cfg`` with the reward model whole in this process (not sharded over ranks)."""
    reward = cfg.models.reward.model_copy(update={"zero_stage": 0})
    return cfg.model_copy(update={"models": cfg.models.model_copy(update={"reward": reward})})


def _check_folders(model: str, baseline: str | None, reward: str | None) -> None:
    folders = [ModelFolder("judged", "--model", model)]
    if baseline is not None:
        folders.append(ModelFolder("baseline", "--baseline", baseline))
    if reward is not None:
        folders.append(ModelFolder("reward", "models.reward.path", reward))
    check_model_folders(folders, tokenizer=folders[0], score_heads={"reward"})


def answer_prompts(
    cfg: Config, device: DeviceProfile, folder: str, prompts: list[Prompt], samples: int | None
) -> Answers:
    """The folder's greedy response to each prompt, or ``samples`` sampled ones; the engine is freed after."""
    sampler = Sampler(cfg, folder, device)
    try:
        sampling = sampler.greedy() if samples is None else replace(sampler.configured(), n=samples)
        return Answers(sampler.samples([p.token_ids for p in prompts], sampling), sampler.tokenizer, sampling)
    finally:
        sampler.close()


class Judge:
    """The experiment's reward, computed by the reward role's own worker in this process, and its gold
    function."""

    def __init__(self, cfg: Config, paths: ModelPaths, device: DeviceProfile):
        self.cfg = cfg = _in_this_process(cfg)
        role = ROLE_SPECS["reward"]
        self.worker = import_object(role.worker(cfg))(cfg, 0, 1, device)
        self.worker.setup(*setup_arguments(role, cfg, paths, 0))
        spec = cfg.reward.gold_function
        self.gold = None if spec is None else import_reward_function(spec)

    def rewards(self, prompts: list[Prompt], answers: Answers) -> Rewards:
        batch = self._batch(prompts, answers)
        shape = (len(prompts), answers.sampling.n)
        gold = None
        if self.gold is not None:
            arguments = reward_arguments(batch.texts, batch.columns)
            gold = call_reward_function(self.gold, self.cfg.reward.gold_function, arguments, len(batch)).view(shape)
        length = float(batch.response_mask.sum(-1).float().mean())
        return Rewards(self.worker.scores(batch).view(shape), gold, length)

    def _batch(self, prompts: list[Prompt], answers: Answers) -> SequenceBatch:
        """One row per sample, with the texts and prompt columns a reward function reads."""
        n = answers.sampling.n
        batch = batch_from_samples([p.token_ids for p in prompts], answers.samples, answers.tokenizer.pad_token_id)
        decode = answers.tokenizer.decode
        names = dict.fromkeys(name for p in prompts for name in p.columns)
        return batch.with_fields(
            texts={
                "prompt": [p.text for p in prompts for _ in range(n)],
                "response": [decode(s.token_ids, skip_special_tokens=True) for ss in answers.samples for s in ss],
                "label": [p.label for p in prompts for _ in range(n)],
            },
            columns={name: [p.columns.get(name) for p in prompts for _ in range(n)] for name in names},
        )


def _scores(folder: str, rewards: Rewards, request: EvalRequest) -> ModelScores:
    gold = None if rewards.gold is None else float(rewards.gold.mean())
    pass_at_k = None
    if request.samples is not None:
        passed = rewards.values > request.pass_threshold
        pass_at_k = {k: mean_pass_at_k(passed, k) for k in pass_at_k_values(request.samples)}
    return ModelScores(folder, float(rewards.values.mean()), gold, rewards.response_length, pass_at_k)


def _per_prompt(rewards: Rewards) -> torch.Tensor:
    return rewards.values.mean(-1)
