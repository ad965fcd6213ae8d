"""The driver's handle on the rollout engines: load-balanced generation and verified weight syncs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import ray

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import engines_per_node
from rlhf_ray.data.samples import Sample
from rlhf_ray.distributed.placement import RoleSlots
from rlhf_ray.distributed.role_group import RoleGroup, share_cores
from rlhf_ray.distributed.weight_sync.strategies import create_weight_sync
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.workers.rollout_worker import RolloutWorker, StaleWeightsError

CHUNKS_PER_ENGINE = 2


class RolloutGroup:
    """``num_engines`` rollout actors and the policy version they hold (0: the weights they loaded
    from the policy's folder). With ``rollout.weight_sync: in_process`` the engines live inside the
    ``policy``'s actors, one per rank, and ``slots`` is None."""

    def __init__(
        self, cfg: Config, device: DeviceProfile, slots: RoleSlots | None, model_path: str, policy: RoleGroup | None
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
        if self.in_process:
            self.engines = policy.actors
            policy.start_rollout_engine(model_path)
            return
        actor_cls = ray.remote(RolloutWorker)
        self.engines = [
            actor_cls.options(
                runtime_env={"env_vars": device.actor_env(cfg.resources)},
                **slots.actor_options(index),
            ).remote(cfg, index, device, model_path)
            for index in range(slots.world_size)
        ]

    def ready(self) -> list[ray.ObjectRef]:
        """References that resolve once every engine has loaded its model (or fail with its error)."""
        return [engine.weights_version.remote() for engine in self.engines]

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
        # One call per engine batches best; smaller chunks let a fast engine take over a slow one's work.
        chunks = 1 if len(self.engines) == 1 else len(self.engines) * CHUNKS_PER_ENGINE
        chunk = max(1, -(-len(prompts) // chunks))
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
            except Exception:
                for ref in running:
                    ray.cancel(ref)
                raise
            if pending:
                dispatch(engine_index)
        return [samples for start in sorted(results) for samples in results[start]]

    def generate_ahead(self, prompts: Sequence[Sequence[int]], sampling: SamplingSpec) -> Future[list[list[Sample]]]:
        """``generate`` in the background with the weights the engines hold now (``self.version``), while
        the driver goes on; calls run one after another, and the next weight sync waits for them all, so
        every call finishes on the weights it started with."""
        future = self._background.submit(self.generate, prompts, sampling, self.version)
        self._in_flight.append(future)
        return future

    def finish_generating(self) -> None:
        """Wait for the generations in flight (their errors are their futures')."""
        wait(self._in_flight)
        self._in_flight.clear()

    def sync_from(self, policy: RoleGroup, version: int) -> float:
        """Push the policy's current weights, which are its ``version``, to every engine, as
        ``rollout.weight_sync`` says, once the generations in flight are done; returns the seconds the
        push took."""
        self.finish_generating()
        started = time.perf_counter()
        self.weight_sync.sync(policy, self.engines, version)
        self.version = version
        return time.perf_counter() - started

    def shutdown(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)
        if self.in_process:
            return  # the policy's actors, which the policy group shuts down
        for engine in self.engines:
            ray.kill(engine)
