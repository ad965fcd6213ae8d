"""Stopping a run on SIGTERM or SIGINT (preemption, Ctrl-C) so that it can resume.

The first signal asks the driver to stop at the end of the current step, after a checkpoint. If the
step is not done within the deadline, or a second signal comes, the step is abandoned (``Abandoned``
is raised in the driver's main thread) and the newest complete checkpoint is the one to resume from.
"""

from __future__ import annotations

import _thread
import signal
import threading
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Abandoned(BaseException):
    """The step under way is given up (a BaseException, so that no ``except Exception`` swallows it)."""


class StopRequest:
    """Handles SIGTERM and SIGINT while the context is open (in the main thread; elsewhere a no-op)."""

    def __init__(self, deadline_s: float):
        self.deadline_s = deadline_s
        self.signal: signal.Signals | None = None
        """The first signal received; None while the run goes on."""
        self._deadline: threading.Timer | None = None
        self._expired = False
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._receive)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _receive(self, number: int, frame: FrameType | None) -> None:
        if self._expired:
            raise Abandoned(f"the step was not done {self.deadline_s:g} s after {self.signal.name}")
        if self.signal is not None:
            raise Abandoned(f"{signal.Signals(number).name} again")
        self.signal = signal.Signals(number)
        self._deadline = threading.Timer(self.deadline_s, self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self) -> None:
        self._expired = True
        _thread.interrupt_main(self.signal)
