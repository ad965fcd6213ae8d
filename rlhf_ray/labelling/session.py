"""A labelling session: hands items out, checks each judgement against what was shown, and keeps it in the
judgements file before saying so. What the web app calls; it knows nothing of HTTP."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rlhf_ray.data.rankings import Ranking, check_ranking
from rlhf_ray.data.records import DataError
from rlhf_ray.labelling.assignment import Assigner, Progress
from rlhf_ray.labelling.items import LabelItem
from rlhf_ray.labelling.prefetch import Prefetcher
from rlhf_ray.labelling.stats import LabelStats, label_stats
from rlhf_ray.labelling.store import JudgementStore, StoreError

FLAGS = ("unsafe", "nonsense")
"""Why a labeller may flag an item instead of ranking it."""


@dataclass(frozen=True)
class Judgement:
    """What a labeller did with an item: a ranking, a flag, or neither (skipped)."""

    item: int
    digest: str
    """The ``LabelItem.digest`` of what the page showed."""
    labeller: str
    ranking: Ranking | None
    flag: str | None
    seconds: float
    """From showing the item to the judgement."""


class JudgementRejected(ValueError):
    """A judgement that cannot be kept as it is: ``kind`` is ``unknown`` (no such item), ``changed`` (the
    page showed other responses) or ``invalid`` (a ranking that does not rank the item's responses)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class LabellingSession:
    def __init__(self, store: JudgementStore, assigner: Assigner, prefetcher: Prefetcher, model: str, prefetch: int):
        self.store = store
        self.assigner = assigner
        self.prefetcher = prefetcher
        self.model = model
        self.prefetch = prefetch
        self._lock = threading.Lock()
        self._kept: dict[int, LabelItem] = {}
        """The first judged form of each item: what a second labeller sees."""
        for number, row in enumerate(store.rows(), 1):
            try:
                index, labeller = int(row["item"]), str(row["labeller"])
                self._kept.setdefault(index, LabelItem(index, row["prompt"], list(row["responses"]), row["seed"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise StoreError(f"{store.path}: judgement {number}: not a row this app writes ({exc!r})") from None
            assigner.record(index, labeller)
        prefetcher.want(assigner.upcoming(prefetch))

    def next_item(self, labeller: str) -> LabelItem | None:
        """The item ``labeller`` should judge now, or None when none is left for them."""
        with self._lock:
            index = self.assigner.next_for(labeller)
            self.prefetcher.want(self.assigner.upcoming(self.prefetch))
            kept = self._kept.get(index)
        if index is None or kept is not None:
            return kept
        return self.prefetcher.get(index)

    def judge(self, judgement: Judgement) -> bool:
        """Keep ``judgement`` in the file (on disk when this returns); False when its labeller had judged
        that item already (nothing is written twice)."""
        item = self._item(judgement.item)
        if judgement.digest != item.digest:
            raise JudgementRejected("changed", f"item {item.index} is not what the page showed: reload it")
        if judgement.ranking is not None:
            try:
                check_ranking(judgement.ranking, len(item.responses))
            except DataError as exc:
                raise JudgementRejected("invalid", str(exc)) from None
        with self._lock:
            if judgement.labeller in self.assigner.judges(item.index):
                return False
            self.store.append(self._row(item, judgement))
            self.assigner.record(item.index, judgement.labeller)
            self._kept.setdefault(item.index, item)
            if len(self.assigner.judges(item.index)) >= (2 if self.assigner.shared(item.index) else 1):
                self.prefetcher.forget(item.index)
        return True

    def progress(self, labeller: str) -> Progress:
        with self._lock:
            return self.assigner.progress(labeller)

    def stats(self) -> LabelStats:
        return label_stats(self.store.rows())

    def close(self) -> None:
        self.prefetcher.stop()
        self.store.close()

    def _item(self, index: int) -> LabelItem:
        with self._lock:
            kept = self._kept.get(index)
        if kept is not None:
            return kept
        if not 0 <= index < self.assigner.target:
            raise JudgementRejected("unknown", f"no item {index}: items are 0 to {self.assigner.target - 1}")
        return self.prefetcher.get(index)

    def _row(self, item: LabelItem, judgement: Judgement) -> dict[str, Any]:
        return {
            "item": item.index,
            "prompt": item.prompt,
            "responses": item.responses,
            "ranking": judgement.ranking,
            "flag": judgement.flag,
            "labeller": judgement.labeller,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "seconds": round(judgement.seconds, 3),
            "model": self.model,
            "seed": item.seed,
        }
