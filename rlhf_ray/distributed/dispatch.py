"""How a role group calls a worker method, declared on the method: the group then exposes it under the
same name (``roles.policy.update(batch, kl_coef=...)``), so a reader follows a call from the driver
straight into the worker."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from rlhf_ray.distributed.faults import fault_point

Method = TypeVar("Method", bound=Callable[..., Any])
_ATTRIBUTE = "__rlhf_dispatch__"


class Dispatch(Enum):
    SHARDED = "sharded"
    """The batch split over the ranks (padded with copies of its last row to a multiple of them, since the
    ranks of a ZeRO-3 group must run alike); tensors gathered in order, padding dropped, numbers averaged
(also under each key of a dict)."""
    EVEN = "even"
    """As SHARDED, but the batch must split evenly (an update: a copied row would be trained on twice)."""
    ALL = "all"
    """The same arguments to every rank; the results in rank order."""
    RANK_ZERO = "rank_zero"
    """The same arguments to every rank (a collective); rank 0's result."""


def dispatch(mode: Dispatch) -> Callable[[Method], Method]:
    """Declare how a role group calls the decorated worker method (which is then also a point where the
    tests of recovery may kill the rank: ``faults``)."""

    def declare(method: Method) -> Method:
        guarded = fault_point(method)
        setattr(guarded, _ATTRIBUTE, mode)
        return guarded

    return declare


def dispatch_mode(worker_cls: type, name: str) -> Dispatch | None:
    """The declared mode of ``worker_cls.name``; None when it has none (not callable through a group)."""
    return getattr(getattr(worker_cls, name, None), _ATTRIBUTE, None)
