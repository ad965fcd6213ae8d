"""Rankings of a prompt's responses, as people give them: best first, in tiers of tied responses.

A ranking of K responses stands for every pair of responses it orders: K(K-1)/2 when nothing is tied,
fewer with ties (tied responses give no pair). InstructGPT trained on all pairs of a ranking at once,
so that one prompt's many correlated pairs do not weigh more than another's; here each pair carries
the weight 1 / (its ranking's pairs), which makes every ranking count once in the loss.
"""

from __future__ import annotations

from rlhf_ray.data.records import DataError

Ranking = list[list[int]]
"""Tiers of response indices, best tier first; the responses of one tier are tied."""


def check_ranking(ranking: object, responses: int) -> Ranking:
    """``ranking`` as a ``Ranking`` of ``responses`` responses: non-empty tiers of indices that hold each
    index 0..responses-1 exactly once, or a ``bad ranking`` error saying what is wrong."""
    if not isinstance(ranking, list) or not all(isinstance(tier, list) and tier for tier in ranking):
        raise DataError("bad ranking: it must be a list of non-empty lists of response indices, best first")
    indices = [index for tier in ranking for index in tier]
    if not all(isinstance(index, int) and not isinstance(index, bool) for index in indices):
        raise DataError(f"bad ranking: {ranking} holds something that is not a response index")
    if sorted(indices) != list(range(responses)):
        raise DataError(f"bad ranking: {ranking} must hold each of the {responses} responses' indices once")
    return ranking


def ordered_pairs(ranking: Ranking) -> list[tuple[int, int]]:
    """(better, worse) for every pair of responses the ranking orders, in tier order; ties give none."""
    return [
        (better, worse)
        for position, tier in enumerate(ranking)
        for lower in ranking[position + 1 :]
        for better in tier
        for worse in lower
    ]


def pair_agreement(first: Ranking, second: Ranking) -> tuple[int, int]:
    """(agreeing, compared): of the pairs of responses both rankings order, how many they order the same way."""
    second_pairs = set(ordered_pairs(second))
    orders = [(pair in second_pairs, pair[::-1] in second_pairs) for pair in ordered_pairs(first)]
    return sum(same for same, _ in orders), sum(same or opposite for same, opposite in orders)
