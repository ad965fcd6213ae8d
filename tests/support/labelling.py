"""A labelling session over made-up items (no model): what the app and page tests serve."""

from rlhf_ray.labelling.assignment import Assigner
from rlhf_ray.labelling.items import LabelItem
from rlhf_ray.labelling.prefetch import Prefetcher
from rlhf_ray.labelling.session import LabellingSession
from rlhf_ray.labelling.store import JudgementStore


def made_up_item(index: int, responses: int = 4) -> LabelItem:
    return LabelItem(index, f"Prompt {index}?", [f"Answer {index}.{r}" for r in range(responses)], seed=100 + index)


def made_up_session(path, target=6, overlap=0.0, responses=4, make=None, lease_s=600.0) -> LabellingSession:
    """A session of ``target`` items of ``responses`` made-up responses each (or as ``make`` makes them)."""
    make = make or (lambda indices: [made_up_item(i, responses) for i in indices])
    return LabellingSession(
        JudgementStore(path), Assigner(target, overlap, lease_s), Prefetcher(make, 4), "made-up-model", 4
    )
