"""Reciprocal rank fusion of the vector and full-text rankings.

Why RRF rather than a convex combination of scores: cosine similarity and PostgreSQL's
``ts_rank`` live on unrelated scales that shift with the embedding model, the query
length and the document lengths, so a weighted sum needs re-tuning per model and per
corpus (and per knowledge base, since each may use its own model). RRF uses ranks
only, needs no calibration, and is the standard robust baseline for hybrid search
(Cormack, Clarke and Büttcher, SIGIR 2009). ``k = 60`` is the value from that paper:
it flattens the difference between neighbouring ranks so one arm alone cannot
dominate, while a passage both arms rank highly still wins.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

RRF_K = 60

Key = TypeVar("Key", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Key]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[Key, float]]:
    """Fuse best-first rankings into one, scored by ``sum(weight / (k + rank))``.

    Args:
        rankings: Each a list of keys, best first (rank 1 is the first item).
        k: The RRF constant; larger values flatten the contribution of top ranks.
        weights: Optional per-ranking weights (default 1 each).

    Returns:
        ``(key, score)`` pairs, best first; ties keep the order of first appearance.
    """
    scores: dict[Key, float] = {}
    for index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[index]
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])
