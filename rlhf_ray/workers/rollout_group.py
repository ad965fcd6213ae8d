"""The driver's handle on the rollout engines: load-balanced generation and verified weight syncs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import ray
from ray.exceptions import RayActorError

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import engines_per_node
from rlhf_ray.data.samples import Sample
from rlhf_ray.distributed.failures import ActorProcess, RestartBudget, actor_id, get_all
from rlhf_ray.distributed.faults import process_env
from rlhf_ray.distributed.placement import RoleSlots
from rlhf_ray.distributed.role_group import RoleGroup, share_cores
from rlhf_ray.distributed.weight_sync.strategies import create_weight_sync
from rlhf_ray.engines.rollout import KVCapacity, SamplingSpec, calls_per_step, kv_cache_shortfall
from rlhf_ray.workers.rollout_worker import RolloutWorker, StaleWeightsError

Generate = Callable[[Sequence[Sequence[int]], SamplingSpec], list[list[Sample]]]
"""``sampling.n`` samples for each of the prompts' token ids."""
log = logging.getLogger(__name__)


class EngineLost(RuntimeError):
    """A rollout engine died during a call (its actor is gone; ``restart_lost_engines`` replaces it)."""

    def __init__(self, index: int):
        super().__init__(f"rollout engine {index} died")
        self.index = index


class RolloutGroup:
    """``num_engines`` rollout actors and the policy version they hold (0: the weights they loaded
    from the policy's folder). With ``rollout.weight_sync: in_process`` the engines live inside the
    ``policy``'s actors, one per rank, and ``slots`` is None."""

    def __init__(
        self,
        cfg: Config,
        device: DeviceProfile,
        slots: RoleSlots | None,
        model_path: str,
        policy: RoleGroup | None,
        restart_budget: RestartBudget | None = None,
    ):
        self.cfg = cfg = device.resolved(cfg)
        self.version = 0
        self.engines_alongside = engines_per_node(cfg.rollout) if cfg.rollout.async_steps else 0
        """Engines per node computing while the roles do (generating ahead); 0 when they wait."""
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout")
        self._in_flight: list[Future] = []
        self.weight_sync = create_weight_sync(cfg)
        self.in_process = self.weight_sync.engines_inside_policy
        self.policy = policy
        self.restart_budget = restart_budget or RestartBudget(cfg.resources.max_restarts)
        self.kv_capacity: KVCapacity | None = None
        self._warned_of_waves = False
        self.processes: dict[str, ActorProcess] = {}
        """Each engine as the driver names it when it dies, by actor id (the policy's, when in-process)."""
        if self.in_process:
            self.engines = policy.actors
            policy.start_rollout_engine(model_path)
            return
        self.device, self.slots, self.model_path = device, slots, model_path
        self.engines = [self._start_engine(index) for index in range(slots.world_size)]

    def _start_engine(self, index: int) -> ray.actor.ActorHandle:
        env = self.device.actor_env(self.cfg.resources) | process_env("rollout", index)
        return (
            ray.remote(RolloutWorker)
            .options(runtime_env={"env_vars": env}, **self.slots.actor_options(index))
            .remote(self.cfg, index, self.device, self.model_path)
        )

    def ready(self) -> list[ray.ObjectRef]:
        """References that resolve once every engine has loaded its model (or fail with its error)."""
        return [engine.weights_version.remote() for engine in self.engines]

    def describe(self) -> None:
        """Learn what each engine holds at once, and its node and log file (once they are ready)."""
        self.kv_capacity = get_all([self.engines[0].kv_capacity.remote()])[0]
        if self.in_process:
            return
        nodes = get_all([engine.node_id.remote() for engine in self.engines])
        logs = get_all([engine.log_file.remote() for engine in self.engines])
        self.processes = {
            actor_id(engine): ActorProcess("rollout", index, node, log)
            for index, (engine, node, log) in enumerate(zip(self.engines, nodes, logs, strict=True))
        }

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, policy_version: int
    ) -> list[list[Sample]]:
        """``sampling.n`` samples per prompt, in prompt order, from engines holding ``policy_version``
        (refused otherwise). Prompts go out in small chunks to whichever engine is free, so no engine
        idles while another has a queue. Prompt ``i`` is seeded with ``sampling.seed + i * n``, so results
        do not depend on which engine served it."""
        if policy_version != self.version:
            raise StaleWeightsError(
                f"the rollout engines hold policy version {self.version}, not {policy_version}: "
                "sync the weights before generating"
            )
        if self.in_process:
            share_cores([self.policy])  # the policy's ranks generate while every other role waits
        chunk = max(1, -(-len(prompts) // calls_per_step(len(self.engines))))
        self._warn_of_waves(prompts[:chunk], sampling)
        pending = list(range(0, len(prompts), chunk))
        results: dict[int, list[list[Sample]]] = {}
        running: dict[ray.ObjectRef, tuple[int, int]] = {}

        def dispatch(engine_index: int) -> None:
            start = pending.pop(0)
            stop = min(start + chunk, len(prompts))
            seeds = [None if sampling.seed is None else sampling.seed + i * sampling.n for i in range(start, stop)]
            ref = self.engines[engine_index].generate.remote(prompts[start:stop], sampling, seeds, self.version)
            running[ref] = (start, engine_index)

        for engine_index in range(min(len(self.engines), len(pending))):
            dispatch(engine_index)
        while running:
            [done], _ = ray.wait(list(running), num_returns=1)
            start, engine_index = running.pop(done)
            try:
                results[start] = ray.get(done)
            except Exception as error:
                for ref in running:
                    ray.cancel(ref)
                if isinstance(error, RayActorError) and not self.in_process:
                    raise EngineLost(engine_index) from error
                raise
            if pending:
                dispatch(engine_index)
        return [samples for start in sorted(results) for samples in results[start]]

    def _warn_of_waves(self, chunk: Sequence[Sequence[int]], sampling: SamplingSpec) -> None:
        """Once per run: say so when an engine cannot hold a call's sequences at once (they then go in
        waves, and generation takes up to twice as long)."""
        shortfall = None if self.kv_capacity is None else kv_cache_shortfall(chunk, sampling, self.kv_capacity)
        if shortfall is not None and not self._warned_of_waves:
            self._warned_of_waves = True
            log.warning(shortfall)

    def generate_recovering(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec, policy_version: int
    ) -> list[list[Sample]]:
        """``generate``, restarting any engine that dies on the way and doing the call again. Only while
        the policy holds ``policy_version`` (its weights are what a restarted engine receives)."""
        while True:
            try:
                return self.generate(prompts, sampling, policy_version)
            except EngineLost as lost:
                if not self.restart_lost_engines(str(lost)):
                    raise
                self._sync(self.version)

    def restart_lost_engines(self, failure: str) -> bool:
        """Start a new engine in place of each dead one (it loads the policy's folder: sync it next);
        whether any was dead. Each restart spends one of the run's recoveries."""
        self.finish_generating()
        dead = [index for index, engine in enumerate(self.engines) if not _answers(engine)]
        for index in dead:
            self.restart_budget.spend("engines", failure)
            log.warning("%s; restarting it (restart %d of the run)", failure, self.restart_budget.engines)
            ray.kill(self.engines[index])
            self.engines[index] = self._start_engine(index)
        if dead:
            get_all(self.ready())
            self.describe()
            self.weight_sync.reset()
        return bool(dead)

    def generate_ahead(self, rollout: Callable[[Generate], list[list[Sample]]]) -> Future[list[list[Sample]]]:
        """``rollout`` in the background, given ``generate`` with the weights the engines hold now
        (``self.version``), while the driver goes on; rollouts run one after another, and the next weight
        sync waits for them all, so every one finishes on the weights it started with."""
        version = self.version
        future = self._background.submit(rollout, lambda prompts, sampling: self.generate(prompts, sampling, version))
        self._in_flight.append(future)
        return future

    def finish_generating(self) -> None:
        """Wait for the generations in flight (their errors are their futures')."""
        wait(self._in_flight)
        self._in_flight.clear()

    def sync_from(self, version: int) -> float:
        """Push the policy's current weights, which are its ``version``, to every engine, as
        ``rollout.weight_sync`` says, once the generations in flight are done; returns the seconds the
        push took."""
        self.finish_generating()
        started = time.perf_counter()
        try:
            self._sync(version)
        except Exception as error:
            lost = f"a rollout engine died during the weight sync ({error})"
            if self.in_process or not self.restart_lost_engines(lost):
                raise
            self._sync(version)
        return time.perf_counter() - started

    def _sync(self, version: int) -> None:
        self.weight_sync.sync(self.policy, self.engines, version)
        self.version = version

    def shutdown(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)
        if self.in_process:
            return  # the policy's actors, which the policy group shuts down
        for engine in self.engines:
            ray.kill(engine)


def _answers(engine: ray.actor.ActorHandle) -> bool:
    try:
        ray.get(engine.weights_version.remote())
        return True
    except RayActorError:
        return False
