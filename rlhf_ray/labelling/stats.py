"""What a judgements file says about its labellers: items per labeller, time per item, the flag rate, and
how often two labellers of the same item order its responses the same way."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from rlhf_ray.data.rankings import pair_agreement


@dataclass(frozen=True)
class LabellerStats:
    labeller: str
    items: int
    ranked: int
    skipped: int
    flagged: int
    median_seconds: float | None
    """Median time from showing an item to its judgement."""


@dataclass(frozen=True)
class LabelStats:
    judgements: int
    items: int
    """Distinct items judged."""
    flag_rate: float | None
    """Flagged judgements / judgements."""
    shared_items: int
    """Items ranked by two labellers or more (each pair of their rankings compared)."""
    agreeing_pairs: int
    compared_pairs: int
    """Response pairs both labellers of a shared item ordered (ties left out)."""
    labellers: list[LabellerStats]

    @property
    def agreement(self) -> float | None:
        """Share of the compared response pairs that two labellers ordered the same way."""
        return self.agreeing_pairs / self.compared_pairs if self.compared_pairs else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"agreement": self.agreement}

    def table(self) -> str:
        """The figures as the console shows them."""
        lines = [f"{'labeller':<20} {'items':>6} {'ranked':>7} {'skipped':>8} {'flagged':>8} {'s/item':>7}"]
        for row in self.labellers:
            seconds = "-" if row.median_seconds is None else f"{row.median_seconds:.1f}"
            lines.append(
                f"{row.labeller:<20} {row.items:>6} {row.ranked:>7} {row.skipped:>8} {row.flagged:>8} {seconds:>7}"
            )
        flag_rate = "-" if self.flag_rate is None else f"{self.flag_rate:.1%}"
        lines.append(f"{self.judgements} judgements of {self.items} items; flag rate {flag_rate}")
        if self.agreement is None:
            lines.append(f"agreement: no response pair ordered by two labellers ({self.shared_items} shared items)")
        else:
            lines.append(
                f"agreement: {self.agreement:.1%} of {self.compared_pairs} response pairs ordered by two labellers "
                f"({self.shared_items} shared items)"
            )
        return "\n".join(lines)


def label_stats(rows: list[dict[str, Any]]) -> LabelStats:
    """The figures of the judgement rows ``rlhf-ray label serve`` writes."""
    by_labeller: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rankings: dict[int, list[list[list[int]]]] = defaultdict(list)
    for row in rows:
        by_labeller[row["labeller"]].append(row)
        if row.get("ranking") and not row.get("flag"):
            rankings[row["item"]].append(row["ranking"])
    agreeing = compared = shared = 0
    for item_rankings in rankings.values():
        if len(item_rankings) < 2:
            continue
        shared += 1
        for first in range(len(item_rankings)):
            for second in range(first + 1, len(item_rankings)):
                same, both = pair_agreement(item_rankings[first], item_rankings[second])
                agreeing, compared = agreeing + same, compared + both
    flagged = sum(1 for row in rows if row.get("flag"))
    return LabelStats(
        judgements=len(rows),
        items=len({row["item"] for row in rows}),
        flag_rate=flagged / len(rows) if rows else None,
        shared_items=shared,
        agreeing_pairs=agreeing,
        compared_pairs=compared,
        labellers=[_labeller_stats(name, own) for name, own in sorted(by_labeller.items())],
    )


def _labeller_stats(name: str, rows: list[dict[str, Any]]) -> LabellerStats:
    seconds = [row["seconds"] for row in rows if isinstance(row.get("seconds"), int | float)]
    flagged = sum(1 for row in rows if row.get("flag"))
    ranked = sum(1 for row in rows if row.get("ranking") and not row.get("flag"))
    return LabellerStats(
        labeller=name,
        items=len({row["item"] for row in rows}),
        ranked=ranked,
        skipped=len(rows) - ranked - flagged,
        flagged=flagged,
        median_seconds=statistics.median(seconds) if seconds else None,
    )
