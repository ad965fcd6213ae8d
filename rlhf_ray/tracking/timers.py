"""Wall-clock time per phase of an iteration, reported as ``timing/<phase>`` seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.open: list[str] = []
        """The phases under way, outermost first."""
        self.interrupted: str | None = None
        """The innermost phase an exception left."""

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self.open.append(name)
        try:
            yield
        except BaseException:
            self.interrupted = self.interrupted or name
            raise
        finally:
            self.open.pop()
            self.record(name, time.perf_counter() - start)

    @property
    def current(self) -> str:
        """The phase a failure interrupted, else the innermost phase under way ("start-up" outside any)."""
        return self.interrupted or (self.open[-1] if self.open else "start-up")

    def record(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def metrics(self) -> dict[str, float]:
        return {f"timing/{name}": seconds for name, seconds in self.seconds.items()}
