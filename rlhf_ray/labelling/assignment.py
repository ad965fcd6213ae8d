"""Which item a labeller sees next.

Items 0..target-1 are handed out in order, each to one labeller; an evenly spread share of them
(``feedback.overlap``) goes, once judged, to a second labeller, before any new item, for the agreement
figures. An item shown to a labeller is theirs (a reload shows it again) until they judge it or their
lease runs out. Everything but the leases follows from the judgements file, so a restarted app continues
with the first item nobody judged: no gap, and no item judged twice by one labeller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    done: int
    """Items judged at least once."""
    target: int
    yours: int
    """Judgements of the labeller who asks."""


@dataclass
class _Lease:
    labeller: str
    until: float


class Assigner:
    def __init__(
        self,
        target: int,
        overlap: float,
        lease_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.target = target
        self.overlap = overlap
        self.lease_s = lease_s
        self._clock = clock
        self._judges: dict[int, list[str]] = {}
        self._leases: dict[int, _Lease] = {}

    def shared(self, index: int) -> bool:
        """Whether item ``index`` is one of the ``overlap`` share shown to two labellers."""
        return math.floor((index + 1) * self.overlap) > math.floor(index * self.overlap)

    def judges(self, index: int) -> list[str]:
        return list(self._judges.get(index, []))

    def next_for(self, labeller: str) -> int | None:
        """The item ``labeller`` should judge now (leased to them), or None when none is left for them."""
        now = self._clock()
        held = [i for i, lease in self._leases.items() if lease.labeller == labeller]  # still theirs if not taken
        index = min(held) if held else self._second_opinion(labeller, now)
        if index is None:
            index = next(self._fresh(now), None)
        if index is not None:
            self._leases[index] = _Lease(labeller, now + self.lease_s)
        return index

    def upcoming(self, count: int) -> list[int]:
        """The next ``count`` items nobody has judged or holds: those to sample ahead."""
        fresh = self._fresh(self._clock())
        return [index for _, index in zip(range(count), fresh, strict=False)]

    def record(self, index: int, labeller: str) -> bool:
        """Count ``labeller``'s judgement of ``index``; False when they had judged it already."""
        judges = self._judges.setdefault(index, [])
        if labeller in judges:
            return False
        judges.append(labeller)
        lease = self._leases.get(index)
        if lease is not None and lease.labeller == labeller:
            del self._leases[index]
        return True

    def progress(self, labeller: str) -> Progress:
        done = sum(1 for index, judges in self._judges.items() if judges and index < self.target)
        yours = sum(labeller in judges for judges in self._judges.values())
        return Progress(done, self.target, yours)

    def _free(self, index: int, labeller: str | None, now: float) -> bool:
        lease = self._leases.get(index)
        return lease is None or lease.until <= now or lease.labeller == labeller

    def _second_opinion(self, labeller: str, now: float) -> int | None:
        """The first shared item judged once, by someone else, and held by nobody else."""
        waiting = (
            index
            for index, judges in sorted(self._judges.items())
            if index < self.target and self.shared(index) and len(judges) == 1 and labeller not in judges
        )
        return next((index for index in waiting if self._free(index, labeller, now)), None)

    def _fresh(self, now: float):
        return (index for index in range(self.target) if index not in self._judges and self._free(index, None, now))
