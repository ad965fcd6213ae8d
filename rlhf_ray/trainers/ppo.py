"""The PPO driver: RLHF against a reward model or function, with a KL leash to the reference.

One iteration: draw prompts -> sample responses (rollout engines) -> score them, and compute policy,
reference and critic forwards, in parallel -> advantages (pure math) -> update policy and critic in
parallel -> push the new weights to the engines -> log -> checkpoint. With ``rollout.async_steps`` the
engines sample the next steps' responses while this one scores and updates.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError

from rlhf_ray.algorithms import AdaptiveKLController, FixedKLController, logprob_mismatch
from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.data import SequenceBatch
from rlhf_ray.data.experience import compute_advantages
from rlhf_ray.data.prompts import Prompt, PromptSet, load_prompts
from rlhf_ray.data.sampler import PromptSampler
from rlhf_ray.data.samples import Sample, batch_from_samples
from rlhf_ray.distributed.cluster import connect
from rlhf_ray.distributed.failures import RestartBudget, RoleFailure
from rlhf_ray.distributed.role_group import GroupCall, share_cores
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.models import load_tokenizer
from rlhf_ray.models.paths import resolve_model_paths
from rlhf_ray.rewards.functions import call_reward_function, import_reward_function
from rlhf_ray.tracking import PhaseTimer, Tracker, default_run_name
from rlhf_ray.trainers.checkpoint import Checkpointer
from rlhf_ray.trainers.intervals import every
from rlhf_ray.trainers.rollout_queue import Rollout, RolloutQueue
from rlhf_ray.trainers.stop import Abandoned, StopRequest
from rlhf_ray.workers.groups import RoleGroups, start_role_groups


@dataclass
class TrainerState:
    """What the driver itself carries from step to step, saved with every checkpoint."""

    step: int
    policy_version: int
    kl_controller: dict
    sampler: dict
    run_name: str
    wandb_id: str | None


@dataclass
class TrainResult:
    steps: int
    """The last step trained."""
    last_checkpoint: Path | None
    export_dir: Path | None
    metrics_file: Path | None
    wandb_dir: str | None
    stopped_by: str | None = None
    """The signal that stopped the run before its end (it resumes from ``last_checkpoint``)."""


def train(cfg: Config) -> TrainResult:
    """Run PPO as ``cfg`` says, resuming from a checkpoint when ``checkpoint.resume`` finds one. A role
    rank or engine that dies is recovered from (``resources.max_restarts``); SIGTERM or SIGINT stops the
    run resumably (``TrainResult.stopped_by``)."""
    return PPORun(cfg).train()


class PPORun:
    """One PPO run: the data, models and checkpoints it starts from (checked before it joins a cluster),
    and its role groups, started again from the newest complete checkpoint each time one of their
    ranks dies."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.paths = resolve_model_paths(cfg)
        self.tokenizer = load_tokenizer(self.paths.policy, "left", role="policy")
        self.train_set = load_prompts(cfg.data.train_path, cfg.data, self.tokenizer, cfg.seed)
        self.eval_set = (
            load_prompts(cfg.data.eval_path, cfg.data, self.tokenizer, cfg.seed) if cfg.data.eval_path else None
        )
        self.sampler = PromptSampler(len(self.train_set), cfg.data.prompts_per_step, cfg.seed, cfg.data.shuffle)
        self.total_steps = cfg.train.max_steps or cfg.train.episodes * self.sampler.batches_per_epoch
        self.checkpoints = Checkpointer(cfg.checkpoint)
        self.kl = _kl_controller(cfg)
        self.initial = TrainerState(
            0, 0, self.kl.state_dict(), self.sampler.state_dict(), default_run_name(cfg, "ppo"), None
        )
        self.restarts = RestartBudget(cfg.resources.max_restarts)
        self.steps_replayed = 0
        self.tracker: Tracker | None = None
        self.timer = PhaseTimer()
        self.recovery_started: float | None = None
        self.device: DeviceProfile | None = None
        """Set on joining the cluster."""
        self.latest: Path | None = None
        """The newest complete checkpoint of this run: the one it resumed from, or its last save."""

    def train(self) -> TrainResult:
        self.device = connect(self.cfg)
        self.cfg = self.device.resolved(self.cfg)
        self.latest = self.checkpoints.resume_point()
        # After joining the cluster: ray.init installs a SIGTERM handler of its own.
        with StopRequest(self.cfg.checkpoint.stop_deadline_s) as stop:
            return self.train_until_done(stop)

    def train_until_done(self, stop: StopRequest) -> TrainResult:
        """Start the roles from ``self.latest`` and train; after a failure, start them again."""
        while True:
            self.timer, roles, ended = PhaseTimer(), None, False
            try:
                roles = start_role_groups(self.cfg, self.device, self.paths, self.total_steps, self.restarts)
                result = self.run(roles, self.restore(roles, self.latest), stop)
                ended = True
                return result
            except RayActorError as error:
                failure = None if roles is None else roles.failure(error, self.timer.current)
                if failure is None:
                    raise
                if stop.requested:
                    return self.stopped(stop, str(failure))
                self.recover(failure)
            except Abandoned as reason:
                return self.stopped(stop, f"{reason}: the step under way was abandoned")
            finally:
                if roles is not None:
                    roles.shutdown(graceful=ended)

    def restore(self, roles: RoleGroups, checkpoint: Path | None) -> TrainerState:
        """The driver's state at ``checkpoint`` (the start, without one), every role and engine set to it."""
        state = TrainerState(**asdict(self.initial))
        if checkpoint is not None:
            with self.timer.phase("restore"):
                state = TrainerState(**self.checkpoints.load(checkpoint, roles.trained()))
                roles.rollout.sync_from(state.policy_version)
        self.kl.load_state_dict(state.kl_controller)
        self.sampler.load_state_dict(state.sampler)
        if self.tracker is None:
            self.tracker = Tracker(self.cfg, state.run_name, self.total_steps, resume_id=state.wandb_id)
        state.wandb_id = self.tracker.run_id
        return state

    def recover(self, failure: RoleFailure) -> None:
        """Count the recovery from ``failure`` (or give up: ``RunFailed``) and report it; the roles start
        again from ``self.latest``."""
        self.restarts.spend("roles", str(failure))
        resume_from = self.latest
        resumed_step = TrainerState(**self.checkpoints.read_state(resume_from)).step if resume_from else 0
        replayed = max(0, self.tracker.logged_up_to - resumed_step)
        self.steps_replayed += replayed
        process = failure.process
        self.tracker.recovery(
            f"recovery {self.restarts.roles} of at most {self.cfg.resources.max_restarts}: {failure}; starting the "
            f"roles again from {resume_from or 'the beginning'} ({replayed} step(s) to replay)",
            {
                "role": process.role,
                "rank": process.rank,
                "node": process.node,
                "phase": failure.phase,
                "cause": failure.cause,
                "log_file": process.log_file,
            },
            resumed_step,
        )
        self.recovery_started = time.perf_counter()

    def run(self, roles: RoleGroups, state: TrainerState, stop: StopRequest) -> TrainResult:
        """The steps after ``state``'s, to the last one or to a stop request."""
        cfg, tracker = self.cfg, self.tracker
        iteration = PPOIteration(cfg, roles, self.tokenizer, self.kl)
        rollouts = RolloutQueue(
            roles.rollout,
            lambda: ([self.train_set.items[i] for i in self.sampler.next_batch()], self.sampler.state_dict()),
            lambda step: SamplingSpec.from_config(cfg.rollout, seed=_sampling_seed(cfg, step)),
            self.total_steps,
            cfg.rollout.async_steps,
        )
        saved_step = state.step
        for step in range(state.step + 1, self.total_steps + 1):
            self.timer = timer = PhaseTimer()
            last = step == self.total_steps
            with timer.phase("step"):
                rollout = rollouts.take(step, state.policy_version)
                metrics, batch = iteration.run(rollout, rollouts, state, timer)
                state.step, state.kl_controller, state.sampler = step, self.kl.state_dict(), rollout.sampler_state
                if every(step, cfg.checkpoint.interval) or last or stop.requested:
                    with timer.phase("checkpoint"):
                        self.latest = self.checkpoints.save(step, asdict(state), roles.trained())
                        saved_step = step
            if self.eval_set is not None and every(step, cfg.train.eval_interval):
                metrics.update(iteration.evaluate(self.eval_set, state))
            metrics |= self.recovery_metrics()
            metrics["rollout/skipped_prompts"] = float(sum(self.train_set.skipped.values()))
            if every(step, cfg.logging.log_interval) or last or stop.requested:
                tracker.log(step, metrics | timer.metrics() | _throughput(batch, timer, cfg.rollout.async_steps > 0))
            if every(step, cfg.logging.sample_table_interval):
                tracker.log_samples(step, _sample_rows(batch, cfg.logging.sample_table_size))
            if stop.requested and not last:
                return self.stopped(stop, f"checkpoint {self.latest} holds step {saved_step}")
        export_dir = None
        if cfg.checkpoint.export_dir is not None:
            export_dir = Path(cfg.checkpoint.export_dir)
            roles.policy.export_hf(str(export_dir), self.paths.policy).result()
        tracker.finish()
        return TrainResult(self.total_steps, self.latest, export_dir, Path(tracker.metrics_file.name), tracker.run_dir)

    def recovery_metrics(self) -> dict[str, float]:
        """``recovery/*``: restarts of roles and engines and the steps replayed, over the run so far; the
        first step after a recovery also logs ``timing/recovery``, from the failure to that step's end."""
        metrics = {
            "recovery/restarts": float(self.restarts.roles),
            "recovery/engine_restarts": float(self.restarts.engines),
            "recovery/steps_replayed": float(self.steps_replayed),
        }
        if self.recovery_started is not None:
            metrics["timing/recovery"] = time.perf_counter() - self.recovery_started
            self.recovery_started = None
        return metrics

    def stopped(self, stop: StopRequest, why: str) -> TrainResult:
        """The run stopped by ``stop``'s signal, resumable from the newest complete checkpoint."""
        tracker = self.tracker
        if tracker is not None:  # else it stopped while starting
            tracker.progress.console.print(f"stopped by {stop.signal.name}: {why}", highlight=False, soft_wrap=True)
            tracker.wandb.mark_preempting()
            tracker.finish()
        return TrainResult(
            TrainerState(**self.checkpoints.read_state(self.latest)).step if self.latest else 0,
            self.latest,
            None,
            Path(tracker.metrics_file.name) if tracker else None,
            tracker.run_dir if tracker else None,
            stopped_by=stop.signal.name,
        )


class PPOIteration:
    """The steps of one PPO iteration over the role groups."""

    def __init__(self, cfg: Config, roles: RoleGroups, tokenizer, kl):
        self.cfg, self.roles, self.tokenizer, self.kl = cfg, roles, tokenizer, kl
        gold = cfg.reward.gold_function
        self.gold = import_reward_function(gold) if gold is not None else None

    def run(
        self, rollout: Rollout, rollouts: RolloutQueue, state: TrainerState, timer: PhaseTimer
    ) -> tuple[dict[str, float], SequenceBatch]:
        cfg, roles = self.cfg, self.roles
        with timer.phase("generate"):
            batch = self.to_batch(rollout.prompts, rollouts.samples(rollout, state.policy_version))
        staleness = state.policy_version - rollout.version
        batch = self.score(batch, timer)
        with timer.phase("advantages"):
            batch, metrics = compute_advantages(batch, cfg.algorithm, self.kl.value, cfg.rollout.samples_per_prompt)
        share_cores(roles.trained().values(), alongside=roles.rollout.engines_alongside)
        with timer.phase("update"):
            updates = {"policy_update": roles.policy.update(batch, kl_coef=self.kl.value)}
            if roles.critic is not None:
                updates["critic_update"] = roles.critic.update(batch)
            results = _gather_timed(updates, timer)
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
        metrics.update(self.gold_reward(batch, "rollout"))
        return metrics, batch

    def to_batch(self, prompts: list[Prompt], samples: list[list[Sample]]) -> SequenceBatch:
        """The engines' samples of ``prompts`` as a batch, with their texts."""
        batch = batch_from_samples([p.token_ids for p in prompts], samples, self.tokenizer.pad_token_id)
        per_prompt = [len(s) for s in samples]
        return batch.with_fields(
            texts={
                "prompt": [p.text for p, n in zip(prompts, per_prompt, strict=True) for _ in range(n)],
                "response": [
                    self.tokenizer.decode(s.token_ids, skip_special_tokens=True) for ss in samples for s in ss
                ],
                "label": [p.label for p, n in zip(prompts, per_prompt, strict=True) for _ in range(n)],
                "finish": [s.finish_reason for ss in samples for s in ss],
            }
        )

    def score(self, batch: SequenceBatch, timer: PhaseTimer) -> SequenceBatch:
        """Reward, policy, reference and critic forwards, in parallel."""
        roles = self.roles
        forwards = {"reward": roles.reward.scores}
        if self.cfg.algorithm.old_logprobs == "recompute":
            forwards["logprobs"] = roles.policy.logprobs
        if roles.reference is not None:
            forwards["reference"] = roles.reference.logprobs
        if roles.critic is not None:
            forwards["values"] = roles.critic.values
        share_cores((method.group for method in forwards.values()), alongside=roles.rollout.engines_alongside)
        with timer.phase("forwards"):
            calls = {name: method(batch) for name, method in forwards.items()}
            results = _gather_timed(calls, timer)
        return batch.with_fields(
            scores=results["reward"],
            old_logprobs=results.get("logprobs", batch.rollout_logprobs),
            ref_logprobs=results.get("reference"),
            values=results.get("values"),
        )

    def evaluate(self, eval_set: PromptSet, state: TrainerState) -> dict[str, float]:
        """Greedy responses to the held-out prompts, scored by the reward."""
        greedy = SamplingSpec(1, 0.0, 1.0, -1, self.cfg.rollout.max_new_tokens, tuple(self.cfg.rollout.stop_token_ids))
        prompts = [p.token_ids for p in eval_set.items]
        batch = self.to_batch(
            eval_set.items, self.roles.rollout.generate_recovering(prompts, greedy, state.policy_version)
        )
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
        values = call_reward_function(self.gold, self.cfg.reward.gold_function, batch.texts, len(batch))
        return {f"{section}/gold_reward": float(values.mean())}


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


def _throughput(batch: SequenceBatch, timer: PhaseTimer, generating_ahead: bool) -> dict[str, float]:
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


def _sample_rows(batch: SequenceBatch, count: int) -> list[tuple[str, str, float]]:
    return [
        (batch.texts["prompt"][i], batch.texts["response"][i], float(batch.scores[i]))
        for i in range(min(count, len(batch)))
    ]


def _kl_controller(cfg: Config):
    kl = cfg.algorithm.kl
    if kl.controller == "adaptive":
        return AdaptiveKLController(kl.coef, kl.target, kl.horizon)
    return FixedKLController(kl.coef)


def _sampling_seed(cfg: Config, step: int) -> int:
    """Distinct for every (seed, step), and a step's seeds (one per sample) do not overlap the next's."""
    return cfg.seed * 1_000_000_007 + step * cfg.samples_per_step()
