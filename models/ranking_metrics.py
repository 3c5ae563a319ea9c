"""Ranking metrics for highlight scoring: precision@k and NDCG@k over graded relevance.

A scorer ranks candidate windows; a labelled set grades each window (0 = not a highlight,
higher = better clip). These functions compare a ranking with the grades, so two scorer
versions can be compared on the same windows. NDCG uses the exponential gain `2^g - 1` and a
`log2(rank + 1)` discount (Järvelin & Kekäläinen; the form used by most IR toolkits), so a grade-3
window at the top counts far more than a grade-1 window there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _check(grades: Sequence[float], k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if any(not math.isfinite(g) or g < 0 for g in grades):
        raise ValueError("grades must be finite and >= 0")


def rank_by_score(scores: Sequence[float], grades: Sequence[float]) -> list[float]:
    """The grades reordered by descending score; ties keep the input order (stable).

    Raises `ValueError` when the two sequences differ in length or a score is not finite.
    """
    if len(scores) != len(grades):
        raise ValueError(f"{len(scores)} scores for {len(grades)} grades")
    if any(not math.isfinite(s) for s in scores):
        raise ValueError("scores must be finite")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [grades[i] for i in order]


def precision_at_k(ranked_grades: Sequence[float], k: int, *, threshold: float = 1.0) -> float:
    """Share of the top `k` whose grade is at least `threshold`.

    The denominator is `k` even when fewer than `k` items exist (missing ones count as misses),
    so a short list cannot score higher than a long one with the same hits.
    """
    _check(ranked_grades, k)
    hits = sum(1 for g in ranked_grades[:k] if g >= threshold)
    return hits / k


def dcg_at_k(ranked_grades: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of the top `k`: sum of `(2^g - 1) / log2(rank + 1)`."""
    _check(ranked_grades, k)
    return sum((math.pow(2.0, g) - 1.0) / math.log2(i + 2) for i, g in enumerate(ranked_grades[:k]))


def ndcg_at_k(ranked_grades: Sequence[float], k: int) -> float:
    """DCG@k divided by the DCG@k of the ideal order of the same grades, in 0..1.

    The ideal order is the grades sorted high to low, so it needs every graded item, not only
    the top `k`: pass the whole ranked list. A list without any relevant item scores 0.
    """
    ideal = dcg_at_k(sorted(ranked_grades, reverse=True), k)
    if ideal == 0.0:
        return 0.0
    return dcg_at_k(ranked_grades, k) / ideal
