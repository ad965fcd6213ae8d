"""Sampling items ahead of the labellers, in batches, on a thread of its own: the next item is usually
sampled before anyone asks for it, so the page shows it at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from rlhf_ray.labelling.items import LabelItem

log = logging.getLogger(__name__)


class Prefetcher:
    """Items made by ``make`` (a batch of indices at a time, at most ``batch_size``): those asked for by
    ``get`` first, then those announced by ``want``."""

    def __init__(self, make: Callable[[Sequence[int]], list[LabelItem]], batch_size: int):
        self._make = make
        self._batch_size = batch_size
        self._ready: dict[int, LabelItem] = {}
        self._asked: set[int] = set()
        self._wanted: set[int] = set()
        self._failure: Exception | None = None
        self._stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="label-prefetch", daemon=True)
        self._thread.start()

    def want(self, indices: Iterable[int]) -> None:
        """Sample these items when nothing is asked for (replaces the previous wish)."""
        with self._changed:
            self._wanted = set(indices)
            self._changed.notify_all()

    def get(self, index: int) -> LabelItem:
        """Item ``index``, waiting for it to be sampled when it is not yet."""
        with self._changed:
            self._asked.add(index)
            self._changed.notify_all()
            while index not in self._ready:
                if self._failure is not None:
                    raise RuntimeError(f"sampling responses failed: {self._failure}") from self._failure
                self._changed.wait()
            return self._ready[index]

    def forget(self, index: int) -> None:
        """Drop a judged item (its responses now live in the judgements file)."""
        with self._changed:
            self._ready.pop(index, None)
            self._asked.discard(index)

    def ready(self) -> set[int]:
        with self._changed:
            return set(self._ready)

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._thread.join()

    def _next_batch(self) -> list[int]:
        asked = sorted(self._asked - self._ready.keys())
        wanted = sorted(self._wanted - self._ready.keys() - self._asked)
        return (asked + wanted)[: self._batch_size]

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and (self._failure is not None or not self._next_batch()):
                    self._changed.wait()
                if self._stopped:
                    return
                batch = self._next_batch()
            try:
                items = self._make(batch)
            except Exception as exc:  # shown to whoever waits for an item, and logged here
                log.exception("sampling items %s failed", batch)
                with self._changed:
                    self._failure = exc
                    self._changed.notify_all()
                continue
            with self._changed:
                self._ready.update({item.index: item for item in items})
                self._changed.notify_all()
