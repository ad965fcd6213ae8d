"""Keeping a process's long-lived objects out of Python's cyclic garbage collections."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Collect, then move every object alive now out of the collector's sight (what is allocated later is
    collected as before). Once the first step has run: torch.compile leaves some 250k long-lived objects
    in a process, and each full collection walked them all (0.2 s on 2 cores, in one step of every few)."""
    gc.collect()
    gc.freeze()
