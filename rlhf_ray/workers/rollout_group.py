"""The driver's handle on the rollout engines: load-balanced generation and verified weight syncs."""

from __future__ import annotations

import time
from collections.abc import Sequence

import ray

from rlhf_ray.config import Config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.data.rollouts import Sample
from rlhf_ray.distributed.placement import RoleSlots
from rlhf_ray.distributed.role_group import RoleGroup, share_cores
from rlhf_ray.distributed.weight_sync import TensorSpec, bucket_plan
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.workers.rollout import RolloutWorker, StaleWeightsError

CHUNKS_PER_ENGINE = 2


class RolloutGroup:
    """``num_engines`` rollout actors and the policy version they hold (0: the weights they loaded
    from the policy's folder). With ``rollout.weight_sync: in_process`` the engines live inside the
    ``policy``'s actors, one per rank, and ``slots`` is None."""

    def __init__(
        self, cfg: Config, device: DeviceProfile, slots: RoleSlots | None, model_path: str, policy: RoleGroup | None
    ):
        self.cfg = cfg
        self.version = 0
        self._bucket_plan: list[list[TensorSpec]] | None = None  # set when the sync group forms
        self.in_process = cfg.rollout.weight_sync == "in_process"
        self.policy = policy
        if self.in_process:
            self.engines = policy.actors
            policy.call_async("start_rollout_engine", model_path)
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

    def sync_from(self, policy: RoleGroup, version: int) -> float:
        """Push the policy's current weights, which are its ``version``, to every engine; returns the
        seconds it took. Each engine must then report that version."""
        started = time.perf_counter()
        if self.in_process:
            policy.call("load_own_engine", version)
        elif self.cfg.rollout.weight_sync == "broadcast":
            self._broadcast(policy, version)
        else:
            state = policy.call_async("state_dict")
            ray.get([engine.load_weights.remote(state[0], version) for engine in self.engines] + state[1:])
        held = ray.get([engine.weights_version.remote() for engine in self.engines])
        if held != [version] * len(self.engines):
            raise RuntimeError(f"weight sync to version {version} failed: the engines hold versions {held}")
        self.version = version
        return time.perf_counter() - started

    def _broadcast(self, policy: RoleGroup, version: int) -> None:
        if self._bucket_plan is None:
            self._bucket_plan = self._join_sync_group(policy)
        ray.get(
            policy.call_async("broadcast_weights", self._bucket_plan)
            + [engine.receive_weights.remote(self._bucket_plan, version) for engine in self.engines]
        )

    def _join_sync_group(self, policy: RoleGroup) -> list[list[TensorSpec]]:
        """Form the sync group of policy rank 0 and every engine's model-holding processes; the bucket
        plan of the policy's parameters, which stays the same for the whole run."""
        sender = policy.actors[0]
        master_addr, master_port = ray.get(sender.rendezvous_address.remote())
        members = ray.get([engine.sync_ranks.remote() for engine in self.engines])
        first_ranks = [1 + sum(members[:index]) for index in range(len(members))]
        world = 1 + sum(members)
        ray.get(
            [sender.join_weight_sync.remote(master_addr, master_port, world)]
            + [
                engine.join_weight_sync.remote(master_addr, master_port, first, world)
                for first, engine in zip(first_ranks, self.engines, strict=True)
            ]
        )
        specs = ray.get(sender.weight_specs.remote(self.cfg.rollout.dtype))
        return bucket_plan(specs, self.cfg.rollout.sync_bucket_bytes)

    def shutdown(self) -> None:
        if self.in_process:
            return  # the policy's actors, which the policy group shuts down
        for engine in self.engines:
            ray.kill(engine)
