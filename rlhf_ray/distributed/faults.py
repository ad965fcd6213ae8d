"""Fault injection for the tests of recovery: kill a chosen process at a chosen point of the run.

``RLHF_RAY_FAULTS`` lists faults as ``process:rank:point:call``, comma-separated: the process is a
role (``policy``, ``critic``, ``reference``, ``reward``), ``rollout`` (an engine; rank = engine index)
or ``driver`` (rank 0); the point is a method a role group calls (``update``, ``logprobs``, ``save``,
...), an engine's ``generate`` or ``receive_weights``, or the driver's ``checkpoint_write``; the
process SIGKILLs itself on entering the point for the ``call``-th time over the whole run, counted in
``RLHF_RAY_FAULT_DIR`` so that restarted processes go on counting (and each fault fires once). Every
role actor and engine gets both variables from the driver along with its role and rank. Unset, a
fault point costs one dictionary lookup.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

FAULTS_VAR = "RLHF_RAY_FAULTS"
FAULT_DIR_VAR = "RLHF_RAY_FAULT_DIR"
ROLE_VAR = "RLHF_RAY_ROLE"
RANK_VAR = "RLHF_RAY_RANK"
DRIVER = "driver"

Method = TypeVar("Method", bound=Callable[..., Any])


@dataclass(frozen=True)
class Fault:
    process: str
    rank: int
    point: str
    call: int

    @classmethod
    def parse(cls, text: str) -> Fault:
        try:
            process, rank, point, call = text.split(":")
            return cls(process, int(rank), point, int(call))
        except ValueError:
            raise ValueError(f"{FAULTS_VAR}: {text!r} is not process:rank:point:call") from None


def planned_faults() -> list[Fault]:
    spec = os.environ.get(FAULTS_VAR, "")
    return [Fault.parse(item.strip()) for item in spec.split(",") if item.strip()]


def fault_env() -> dict[str, str]:
    """The driver's fault variables, for the actors it starts (empty when no fault is planned)."""
    return {name: os.environ[name] for name in (FAULTS_VAR, FAULT_DIR_VAR) if name in os.environ}


def process_env(role: str, rank: int) -> dict[str, str]:
    """What an actor needs to know of itself to find its faults."""
    return {ROLE_VAR: role, RANK_VAR: str(rank)} | fault_env()


def reach(point: str) -> None:
    """Count this process's arrival at ``point`` and die here if a planned fault says so."""
    if FAULTS_VAR not in os.environ:
        return
    process, rank = os.environ.get(ROLE_VAR, DRIVER), int(os.environ.get(RANK_VAR, "0"))
    calls = {
        fault.call for fault in planned_faults() if (fault.process, fault.rank, fault.point) == (process, rank, point)
    }
    if calls and _arrivals(f"{process}.{rank}.{point}") in calls:
        os.kill(os.getpid(), signal.SIGKILL)


def _arrivals(name: str) -> int:
    """One more arrival at the point ``name``: the arrivals so far, over every process of the run."""
    if FAULT_DIR_VAR not in os.environ:
        raise RuntimeError(f"{FAULTS_VAR} is set but {FAULT_DIR_VAR}, the folder that counts the arrivals, is not")
    counter = Path(os.environ[FAULT_DIR_VAR]) / name
    counter.parent.mkdir(parents=True, exist_ok=True)
    with counter.open("ab") as file:  # one appended byte per arrival: an append is atomic
        file.write(b".")
    return counter.stat().st_size


def fault_point(method: Method) -> Method:
    """A method on entering which a planned fault may kill the process (named by the method)."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        reach(method.__name__)
        return method(*args, **kwargs)

    return guarded  # type: ignore[return-value]
