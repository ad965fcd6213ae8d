"""One PPO iteration over the role groups: sample (or take what the engines sampled ahead), score with
the reward, policy, reference and critic forwards in parallel, compute the advantages (pure math), update
the policy and critic in parallel, push the new weights to the engines."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray
import torch

from rlhf_ray.algorithms import logprob_mismatch
from rlhf_ray.config import Config
from rlhf_ray.data import SequenceBatch
from rlhf_ray.data.experience import compute_advantages, old_policy_terms
from rlhf_ray.data.prompts import Prompt, PromptSet
from rlhf_ray.data.samples import Sample, batch_from_samples
from rlhf_ray.distributed.role_group import GroupCall, share_cores
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.rewards.functions import RewardSum, call_reward_function, import_reward_function, reward_arguments
from rlhf_ray.tracking import PhaseTimer
from rlhf_ray.trainers.conversations import rollouts_for
from rlhf_ray.trainers.rollout_queue import Rollout, RolloutQueue
from rlhf_ray.workers.groups import RoleGroups


@dataclass
class TrainerState:
    """What the driver itself carries from step to step, saved with every checkpoint."""

    step: int
    policy_version: int
    kl_controller: dict
    sampler: dict
    run_name: str
    wandb_id: str | None


class PPOIteration:
    """The steps of one PPO iteration over the role groups."""

    def __init__(self, cfg: Config, roles: RoleGroups, tokenizer, kl):
        self.cfg, self.roles, self.tokenizer, self.kl = cfg, roles, tokenizer, kl
        gold = cfg.reward.gold_function
        self.gold = import_reward_function(gold) if gold is not None else None
        self.reward_sum = RewardSum.of(cfg.reward) if cfg.reward.source == "function" else None
        """How the reward functions' values make the reward (None: a reward model scores)."""
        self.rollouts = rollouts_for(cfg.rollout, tokenizer)
        """Single answers, or conversations with ``rollout.environment``."""
        self.old_logprobs_from_update = cfg.old_logprobs_from_update()
        """Whether the policy update gives the log-probs before it (no forward of their own)."""

    def run(
        self, rollout: Rollout, rollouts: RolloutQueue, state: TrainerState, timer: PhaseTimer
    ) -> tuple[dict[str, float], SequenceBatch]:
        cfg, roles = self.cfg, self.roles
        with timer.phase("generate"):
            batch = self.to_batch(rollout.prompts, rollouts.samples(rollout, state.policy_version))
        staleness = state.policy_version - rollout.version
        batch, reward_metrics = self.score(batch, timer)
        with timer.phase("advantages"):
            batch, metrics = compute_advantages(batch, cfg.algorithm, self.kl.value, cfg.rollout.samples_per_prompt)
            if not self.old_logprobs_from_update:
                batch, old_metrics = old_policy_terms(batch, cfg.algorithm)
                metrics.update(old_metrics)
        share_cores(roles.trained().values(), alongside=roles.rollout.engines_alongside)
        with timer.phase("update"):
            updates = {"policy_update": roles.policy.update(batch, kl_coef=self.kl.value)}
            if roles.critic is not None:
                updates["critic_update"] = roles.critic.update(batch)
            results = _gather_timed(updates, timer)
        if self.old_logprobs_from_update:
            old_logprobs = results["policy_update"].pop("old_logprobs")
            batch, old_metrics = old_policy_terms(batch.with_fields(old_logprobs=old_logprobs), cfg.algorithm)
            metrics.update(old_metrics)
        if cfg.rollout.async_steps:
            with timer.phase("generate_ahead"):  # what the update did not hide of the next steps' sampling
                roles.rollout.finish_generating()
        state.policy_version += 1
        with timer.phase("weight_sync"):
            roles.rollout.sync_from(state.policy_version)
        self.kl.update(metrics["train/kl"], len(batch))
        metrics.update(_train_metrics("policy", results["policy_update"]))
        if "critic_update" in results:
            metrics.update(_train_metrics("critic", results["critic_update"]))
        metrics["train/kl_coef"] = self.kl.value
        metrics["rollout/staleness"] = float(staleness)
        metrics.update(_rollout_metrics(batch, cfg.algorithm.old_logprobs == "recompute"))
        if cfg.rollout.max_turns > 1:
            metrics.update(_conversation_metrics(batch))
        metrics.update(reward_metrics)
        metrics.update(self.gold_reward(batch, "rollout"))
        return metrics, batch

    def to_batch(self, prompts: list[Prompt], samples: list[list[Sample]]) -> SequenceBatch:
        """The engines' samples of ``prompts`` as a batch, with their texts: each response (in a
        conversation, the policy's last answer) and the whole conversation as chat messages."""
        batch = batch_from_samples([p.token_ids for p in prompts], samples, self.tokenizer.pad_token_id)
        per_prompt = [len(s) for s in samples]
        rows = [(p, s) for p, ss in zip(prompts, samples, strict=True) for s in ss]
        messages = [s.messages or [*p.messages, self._answer(s.token_ids)] for p, s in rows]
        return batch.with_fields(
            texts={
                "prompt": [p.text for p, _ in rows],
                "response": [conversation[-1]["content"] for conversation in messages],
                "label": [p.label for p, _ in rows],
                "finish": [s.finish_reason for _, s in rows],
                "messages": messages,
                "transcript": [
                    _transcript(conversation[len(p.messages) :])
                    for (p, _), conversation in zip(rows, messages, strict=True)
                ],
            },
            columns=_per_sample_columns(prompts, per_prompt),
        )

    def _answer(self, token_ids: list[int]) -> dict[str, str]:
        return {"role": "assistant", "content": self.tokenizer.decode(token_ids, skip_special_tokens=True)}

    def score(self, batch: SequenceBatch, timer: PhaseTimer) -> tuple[SequenceBatch, dict[str, float]]:
        """Reward, policy, reference and critic forwards, in parallel; with reward functions, each one's
        mean value ``rollout/reward/<name>``."""
        roles = self.roles
        forwards = {"reward": roles.reward.scores if self.reward_sum is None else roles.reward.function_scores}
        recompute = self.cfg.algorithm.old_logprobs == "recompute"
        if recompute and not self.old_logprobs_from_update:
            forwards["logprobs"] = roles.policy.logprobs
        if roles.reference is not None:
            forwards["reference"] = roles.reference.logprobs
        if roles.critic is not None:
            forwards["values"] = roles.critic.values
        share_cores((method.group for method in forwards.values()), alongside=roles.rollout.engines_alongside)
        with timer.phase("forwards"):
            calls = {name: method(batch) for name, method in forwards.items()}
            results = _gather_timed(calls, timer)
        scores, reward_metrics = self.rewards(results["reward"])
        scored = batch.with_fields(
            scores=scores,
            old_logprobs=results.get("logprobs") if recompute else batch.rollout_logprobs,
            ref_logprobs=results.get("reference"),
            values=results.get("values"),
        )
        return scored, reward_metrics

    def rewards(self, answer: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The [B] rewards from the reward role's answer: a model's scores, or the [B, F] values of the
        reward functions (then also each one's mean ``rollout/reward/<name>``)."""
        if self.reward_sum is None:
            return answer, {}
        return self.reward_sum.total(answer), self.reward_sum.means(answer, "rollout")

    def evaluate(self, eval_set: PromptSet, state: TrainerState) -> dict[str, float]:
        """Greedy responses to the held-out prompts, scored by the reward."""
        greedy = SamplingSpec(1, 0.0, 1.0, -1, self.cfg.rollout.max_new_tokens, tuple(self.cfg.rollout.stop_token_ids))
        rollout = self.roles.rollout
        samples = self.rollouts(
            eval_set.items,
            greedy,
            lambda prompts, sampling: rollout.generate_recovering(prompts, sampling, state.policy_version),
        )
        batch = self.to_batch(eval_set.items, samples)
        share_cores([self.roles.reward])
        scores = self.roles.reward.scores(batch).result()
        return {
            "eval/reward_mean": float(scores.mean()),
            "eval/response_length": float(batch.response_mask.sum(-1).float().mean()),
            **self.gold_reward(batch, "eval"),
        }

    def gold_reward(self, batch: SequenceBatch, section: str) -> dict[str, float]:
        """``<section>/gold_reward``: the mean hidden "true" reward of the batch (none without a gold function)."""
        if self.gold is None:
            return {}
        arguments = reward_arguments(batch.texts, batch.columns)
        values = call_reward_function(self.gold, self.cfg.reward.gold_function, arguments, len(batch))
        return {f"{section}/gold_reward": float(values.mean())}


def _transcript(after_prompt: list[dict[str, str]]) -> str:
    """The response, or a conversation's turns after the prompt as ``role: content`` lines."""
    if len(after_prompt) == 1:
        return after_prompt[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in after_prompt)


def _per_sample_columns(prompts: list[Prompt], per_prompt: list[int]) -> dict[str, list[Any]]:
    """The prompts' other columns, each prompt's values repeated for its samples (None where its row
    lacks a column another row of the batch has)."""
    names = dict.fromkeys(name for p in prompts for name in p.columns)
    return {
        name: [p.columns.get(name) for p, n in zip(prompts, per_prompt, strict=True) for _ in range(n)]
        for name in names
    }


def _gather_timed(calls: dict[str, GroupCall], timer: PhaseTimer) -> dict[str, Any]:
    """Wait for calls running in parallel; each phase's time is until its own last rank finished."""
    start = time.perf_counter()
    owner = {ref: name for name, call in calls.items() for ref in call.refs}
    left = {name: len(call.refs) for name, call in calls.items()}
    remaining = list(owner)
    while remaining:
        [done], remaining = ray.wait(remaining, num_returns=1)
        ray.get(done)  # a rank that failed fails the phase now: its group's other ranks may never finish
        name = owner[done]
        left[name] -= 1
        if left[name] == 0:
            timer.record(name, time.perf_counter() - start)
    return {name: call.result() for name, call in calls.items()}


def _rollout_metrics(batch: SequenceBatch, recomputed: bool) -> dict[str, float]:
    """Reward, length and truncation statistics; with ``recomputed`` policy log-probs, their mismatch
    with the engines'."""
    lengths = batch.response_mask.sum(-1).float()
    metrics = {
        "rollout/reward_mean": float(batch.scores.mean()),
        "rollout/reward_std": float(batch.scores.std()) if len(batch) > 1 else 0.0,
        "rollout/response_length": float(lengths.mean()),
        "rollout/truncation_rate": sum(f == "length" for f in batch.texts["finish"]) / len(batch),
    }
    if recomputed and batch.rollout_logprobs is not None:
        metrics.update(logprob_mismatch(batch.rollout_logprobs, batch.old_logprobs, batch.response_mask))
    return metrics


def _conversation_metrics(batch: SequenceBatch) -> dict[str, float]:
    """The policy's turns per conversation, and its turn rewards' mean sum per conversation."""
    mask = batch.response_mask
    turn_starts = (mask.diff(dim=-1, prepend=torch.zeros_like(mask[:, :1])) == 1).sum(-1)
    metrics = {"rollout/turns": float(turn_starts.float().mean())}
    if batch.turn_rewards is not None:
        metrics["rollout/turn_reward"] = float(batch.turn_rewards.sum(-1).mean())
    return metrics


def step_throughput(batch: SequenceBatch, timer: PhaseTimer, generating_ahead: bool) -> dict[str, float]:
    """Generated tokens per second of generation; per second of the step when the engines generate
    ahead (hidden behind the update, their own time is not the step's)."""
    tokens = float(batch.response_mask.sum())
    seconds = timer.seconds["step" if generating_ahead else "generate"]
    return {"timing/generated_tokens_per_s": tokens / max(seconds, 1e-9)}


def _train_metrics(role: str, metrics: dict[str, float]) -> dict[str, float]:
    """An update's statistics as ``train/*``. The ones both roles report get the role's name
    (``train/policy_grad_norm``, ``train/critic_lr``); ``loss``, everything minimised (with the KL and
    entropy terms), becomes ``train/<role>_objective``."""
    renamed = {"grad_norm": f"{role}_grad_norm", "lr": f"{role}_lr", "loss": f"{role}_objective"}
    return {f"train/{renamed.get(name, name)}": value for name, value in metrics.items()}


def sample_rows(batch: SequenceBatch, count: int) -> list[tuple[str, str, float]]:
    """(prompt, response, reward) of the first ``count`` samples; a conversation's response is every turn
    after the prompt, one ``role: content`` line each."""
    return [
        (batch.texts["prompt"][i], batch.texts["transcript"][i], float(batch.scores[i]))
        for i in range(min(count, len(batch)))
    ]
