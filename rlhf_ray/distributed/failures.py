"""Telling the driver which process died: waiting on a group's ranks without hanging on the survivors,
and naming the role, rank, node, phase and log file of a dead actor."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError


@dataclass(frozen=True)
class ActorProcess:
    """One role rank or engine as the driver knows it."""

    role: str
    rank: int
    node: str
    log_file: str


class RoleFailure(RuntimeError):
    """A role rank or a rollout engine died (a killed process, an exception that ended the actor, a
    lost node)."""

    def __init__(self, process: ActorProcess, phase: str, cause: str):
        self.process, self.phase, self.cause = process, phase, cause
        super().__init__(
            f"{process.role} rank {process.rank} on node {process.node[:12]} died during {phase}: {cause} "
            f"(its log: {process.log_file})"
        )


class RunFailed(RuntimeError):
    """A failure the run does not recover from: the restarts ran out."""


@dataclass
class RestartBudget:
    """``resources.max_restarts``: the recoveries a run may make, of its roles and of its engines together."""

    limit: int
    roles: int = 0
    engines: int = 0

    def spend(self, kind: str, failure: str) -> None:
        """Count a recovery of ``kind`` (``roles`` or ``engines``) from ``failure``, or end the run."""
        if self.roles + self.engines >= self.limit:
            raise RunFailed(
                f"{failure}; the run has made {self.roles + self.engines} recoveries, "
                f"all that resources.max_restarts = {self.limit} allows"
            )
        setattr(self, kind, getattr(self, kind) + 1)


def own_log_file() -> str:
    """Inside an actor: the file Ray writes its stderr to."""
    try:
        return os.readlink("/proc/self/fd/2")
    except OSError:
        return "<unknown>"


def death_cause(error: RayActorError) -> str:
    """The line of Ray's message that says why the actor ended."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    why = next((line for line in lines if "dead because" in line or "exit" in line.lower()), lines[-1])
    return why.split(". ")[0].rstrip(".")


def identify(error: RayActorError, processes: dict[str, ActorProcess], phase: str) -> RoleFailure | None:
    """The failure ``error`` reports, when it is about one of ``processes`` (by actor id)."""
    process = processes.get(error.actor_id or "")
    return None if process is None else RoleFailure(process, phase, death_cause(error))


def get_all(refs: Sequence[ray.ObjectRef]) -> list[Any]:
    """``ray.get(refs)``, but raising the first error as soon as it is known: when one rank of a group
    dies, the others wait in a collective and their results would never come."""
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done)
    return ray.get(list(refs))


def actor_id(actor: ray.actor.ActorHandle) -> str:
    return actor._actor_id.hex()
