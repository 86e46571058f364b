"""The benchmark's retrieval metrics against examples computed by hand."""

from __future__ import annotations

import math

import pytest

from scripts.bench.metrics import (
    dcg,
    documents_by_best_chunk,
    evaluate,
    ndcg_at_k,
    per_query_ndcg,
    recall_at_k,
)

LOG2_3 = math.log2(3)  # discount at rank 2
LOG2_5 = math.log2(5)  # discount at rank 4


def test_dcg_discounts_by_log2_of_rank_plus_one() -> None:
    # 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.26186 + 0.5
    assert dcg([3, 2, 1]) == pytest.approx(3 + 2 / LOG2_3 + 0.5)
    assert dcg([]) == 0.0


def test_ndcg_binary_relevance() -> None:
    # Relevant a and b found at ranks 2 and 4:
    # DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606
    # IDCG = 1 + 1/log2(3) = 1.630930 -> nDCG = 0.650921
    value = ndcg_at_k(["x", "a", "y", "b"], {"a": 1, "b": 1}, 10)
    assert value == pytest.approx((1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3))
    assert value == pytest.approx(0.650921, abs=1e-6)


def test_ndcg_uses_linear_gain_for_graded_qrels_like_trec_eval() -> None:
    # Grades a=2, b=1, ranked b then a:
    # DCG = 1 + 2/log2(3) = 2.261860; IDCG = 2 + 1/log2(3) = 2.630930 -> 0.859719.
    # (Exponential gain 2**g - 1 would give 0.796710 instead.)
    value = ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10)
    assert value == pytest.approx(0.859719, abs=1e-6)


def test_ndcg_cut_off_and_ideal_limited_to_k() -> None:
    ranking = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg_at_k(ranking, {"a": 1}, 10) == 0.0
    assert ndcg_at_k(ranking, {"a": 1}, 11) == pytest.approx(1 / math.log2(12))
    # Three relevant documents but k = 2: the ideal list is two long, so [a, b] is perfect.
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1, "c": 1}, 2) == pytest.approx(1.0)


def test_ndcg_ignores_zero_grades_and_repeated_documents() -> None:
    assert ndcg_at_k(["z", "a"], {"z": 0, "a": 1}, 10) == pytest.approx(1 / LOG2_3)
    # The second "a" is a duplicate (another chunk of the same document): dropped.
    assert ndcg_at_k(["a", "a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], {"a": 1}, 0)


def test_recall_at_k() -> None:
    relevance = {"a": 1, "b": 1, "c": 1, "d": 0}
    assert recall_at_k(["a", "x", "b", "d"], relevance, 100) == pytest.approx(2 / 3)
    assert recall_at_k(["a", "x", "b"], relevance, 1) == pytest.approx(1 / 3)
    assert recall_at_k([], relevance, 100) == 0.0
    assert recall_at_k(["a"], {}, 100) == 0.0


def test_evaluate_averages_over_every_judged_query() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"d": 1}}
    run = {"q1": ["a"], "q2": ["x", "b"], "extra": ["a"]}
    # q1: nDCG 1, recall 1; q2: nDCG (1/log2 3)/(1 + 1/log2 3) = 0.386853, recall 0.5;
    # q3 has no results: 0 and 0. "extra" is not judged and is ignored.
    result = evaluate(run, qrels, ndcg_k=10, recall_k=100)
    q2 = (1 / LOG2_3) / (1 + 1 / LOG2_3)
    assert result["ndcg@10"] == pytest.approx((1 + q2) / 3)
    assert result["recall@100"] == pytest.approx(0.5)
    assert result["queries"] == 3
    assert per_query_ndcg(run, qrels) == pytest.approx({"q1": 1.0, "q2": q2, "q3": 0.0})
    assert evaluate({}, {}) == {"ndcg@10": 0.0, "recall@100": 0.0, "queries": 0.0}


def test_documents_by_best_chunk_keeps_first_position() -> None:
    assert documents_by_best_chunk(["d2", "d1", "d2", "d3", "d1"]) == ["d2", "d1", "d3"]
