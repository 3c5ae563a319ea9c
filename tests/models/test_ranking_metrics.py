"""Ranking metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from models.ranking_metrics import dcg_at_k, ndcg_at_k, precision_at_k, rank_by_score


def test_rank_by_score_orders_grades_and_keeps_ties_stable() -> None:
    assert rank_by_score([0.1, 0.9, 0.5, 0.9], [0, 3, 1, 2]) == [3, 2, 1, 0]


def test_precision_at_k_counts_hits_over_k() -> None:
    ranked = [3, 0, 2, 1, 0]
    assert precision_at_k(ranked, 1) == 1.0
    assert precision_at_k(ranked, 2) == 0.5
    assert precision_at_k(ranked, 4, threshold=2) == 0.5
    # Fewer items than k: missing ones are misses.
    assert precision_at_k([3, 3], 4) == 0.5


def test_dcg_uses_exponential_gain_and_log_discount() -> None:
    # (2^3-1)/log2(2) + (2^0-1)/log2(3) + (2^2-1)/log2(4) = 7 + 0 + 1.5
    assert dcg_at_k([3, 0, 2], 3) == pytest.approx(8.5)
    assert dcg_at_k([3, 0, 2], 1) == pytest.approx(7.0)


def test_ndcg_is_one_for_the_ideal_order_and_below_otherwise() -> None:
    assert ndcg_at_k([3, 2, 1, 0], 4) == pytest.approx(1.0)
    worst = ndcg_at_k([0, 1, 2, 3], 4)
    ideal = 7 + 3 / math.log2(3) + 1 / 2
    actual = 0 + 1 / math.log2(3) + 3 / 2 + 7 / math.log2(5)
    assert worst == pytest.approx(actual / ideal)
    assert 0.0 < worst < 1.0
    # The ideal comes from all grades, not just the top k: a grade-3 item ranked 3rd hurts @2.
    assert ndcg_at_k([1, 0, 3], 2) == pytest.approx(1.0 / (7 + 1 / math.log2(3)))


def test_ndcg_without_relevant_items_is_zero() -> None:
    assert ndcg_at_k([0, 0, 0], 3) == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: precision_at_k([1, 0], 0),
        lambda: dcg_at_k([1, -1], 2),
        lambda: ndcg_at_k([math.nan], 1),
        lambda: rank_by_score([0.5], [1, 2]),
        lambda: rank_by_score([math.inf], [1]),
    ],
)
def test_bad_inputs_raise(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError):
        call()
