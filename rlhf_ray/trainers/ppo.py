"""The PPO driver: RLHF against a reward model or function, with a KL leash to the reference.

One iteration (``ppo_iteration``): draw prompts -> sample responses (rollout engines) -> score them, and
compute policy, reference and critic forwards, in parallel -> advantages (pure math) -> update policy and
critic in parallel -> push the new weights to the engines -> log -> checkpoint. With
``rollout.async_steps`` the engines sample the next steps' responses while this one scores and updates.
The run around the iterations survives its processes dying (recovery from the newest checkpoint) and
stops resumably on SIGTERM or SIGINT.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ray.exceptions import RayActorError

from rlhf_ray.algorithms import AdaptiveKLController, FixedKLController
from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.data.prompts import load_prompts
from rlhf_ray.data.sampler import PromptSampler
from rlhf_ray.distributed.cluster import connect
from rlhf_ray.distributed.failures import RestartBudget, RoleFailure
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.models import load_tokenizer
from rlhf_ray.models.paths import resolve_model_paths
from rlhf_ray.rewards.http import check_reward_server
from rlhf_ray.tracking import PhaseTimer, Tracker, default_run_name
from rlhf_ray.trainers.checkpoint import Checkpointer
from rlhf_ray.trainers.intervals import every
from rlhf_ray.trainers.ppo_iteration import PPOIteration, TrainerState, sample_rows, step_throughput
from rlhf_ray.trainers.rollout_queue import RolloutQueue
from rlhf_ray.trainers.stop import Abandoned, StopRequest
from rlhf_ray.trainers.summary import experiment_line, role_lines
from rlhf_ray.workers.groups import RoleGroups, start_role_groups


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
        check_reward_server(cfg.reward)
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
        print(experiment_line(self.cfg, self.total_steps), flush=True)
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
                if self.tracker is None:  # the first start
                    print("\n".join(role_lines(self.cfg, roles, self.device.kind)), flush=True)
                result = self.run(roles, self.restore(roles, self.latest), stop)
                ended = True
                return result
            except (RayActorError, RoleFailure) as error:
                failure = self.identify(error, roles)
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

    def identify(self, error: RayActorError | RoleFailure, roles: RoleGroups | None) -> RoleFailure | None:
        """The role rank or engine whose death ``error`` reports (None: not one of the run's)."""
        if isinstance(error, RoleFailure):  # a rank that died while the roles started
            return error
        return None if roles is None else roles.failure(error, self.timer.current)

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
            iteration.rollouts,
        )
        first_step = state.step + 1
        saved_step = state.step
        for step in range(first_step, self.total_steps + 1):
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
            if step == first_step:
                roles.freeze_heaps()
            if self.eval_set is not None and every(step, cfg.train.eval_interval):
                metrics.update(iteration.evaluate(self.eval_set, state))
            metrics |= self.recovery_metrics()
            metrics["rollout/skipped_prompts"] = float(sum(self.train_set.skipped.values()))
            if every(step, cfg.logging.log_interval) or last or stop.requested:
                tracker.log(
                    step, metrics | timer.metrics() | step_throughput(batch, timer, cfg.rollout.async_steps > 0)
                )
            if every(step, cfg.logging.sample_table_interval):
                tracker.log_samples(step, sample_rows(batch, cfg.logging.sample_table_size))
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


def _kl_controller(cfg: Config):
    kl = cfg.algorithm.kl
    if kl.controller == "adaptive":
        return AdaptiveKLController(kl.coef, kl.target, kl.horizon)
    return FixedKLController(kl.coef)


def _sampling_seed(cfg: Config, step: int) -> int:
    """Distinct for every (seed, step), and a step's seeds (one per sample) do not overlap the next's."""
    return cfg.seed * 1_000_000_007 + step * cfg.samples_per_step()
