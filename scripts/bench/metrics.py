"""Retrieval-quality metrics as BEIR reports them (pytrec_eval / trec_eval semantics).

Pure Python, no dependencies, so the benchmark's numbers can be checked by hand:

* **nDCG@k** (trec_eval ``ndcg_cut``): the gain of a document is its graded relevance
  from the qrels (linear gain, not ``2**rel - 1``), discounted by ``log2(rank + 1)``;
  the ideal DCG sorts *every* judged relevant document of the query by grade, so a
  query with more relevant documents than ``k`` can still reach 1.0 only by filling
  the top ``k`` with its best ones. Unjudged documents count as grade 0.
* **recall@k** (trec_eval ``recall``): relevant documents (grade > 0) in the top ``k``,
  divided by all relevant documents of the query.

Runs are best-first lists of document ids (the caller has already broken ties).
:func:`evaluate` averages over *every* query of the qrels: a query the run has no
results for scores 0 (trec_eval without ``-c`` would skip it instead; here nothing
is skipped, so a system cannot gain by returning nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains in rank order: ``sum(g / log2(rank + 1))``."""
    return math.fsum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranked list against one query's graded judgements.

    Args:
        ranking: Document ids, best first (duplicates after the first are ignored).
        relevance: Document id -> grade (only grades > 0 contribute gain).
        k: Cut-off.

    Returns:
        A value in [0, 1]; 0.0 when the query has no relevant document.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    ideal = dcg(sorted((g for g in relevance.values() if g > 0), reverse=True)[:k])
    if ideal == 0.0:
        return 0.0
    gains = [float(max(relevance.get(doc, 0), 0)) for doc in _distinct(ranking)[:k]]
    return dcg(gains) / ideal


def recall_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Share of the query's relevant documents (grade > 0) found in the top ``k``.

    Returns:
        A value in [0, 1]; 0.0 when the query has no relevant document.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    relevant = {doc for doc, grade in relevance.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_distinct(ranking)[:k])) / len(relevant)


def evaluate(run: Run, qrels: Qrels, *, ndcg_k: int = 10, recall_k: int = 100) -> dict[str, float]:
    """Mean nDCG@``ndcg_k`` and recall@``recall_k`` over every query of ``qrels``.

    Args:
        run: Query id -> document ids, best first. Queries missing from it score 0.
        qrels: Query id -> {document id: grade}.
        ndcg_k: nDCG cut-off.
        recall_k: Recall cut-off.

    Returns:
        ``{"ndcg@<k>": ..., "recall@<k>": ..., "queries": n}`` (means; NaN-free: an
        empty ``qrels`` gives 0.0).
    """
    ndcgs: list[float] = []
    recalls: list[float] = []
    for query_id, relevance in qrels.items():
        ranking = run.get(query_id, ())
        ndcgs.append(ndcg_at_k(ranking, relevance, ndcg_k))
        recalls.append(recall_at_k(ranking, relevance, recall_k))
    count = len(ndcgs)
    return {
        f"ndcg@{ndcg_k}": math.fsum(ndcgs) / count if count else 0.0,
        f"recall@{recall_k}": math.fsum(recalls) / count if count else 0.0,
        "queries": float(count),
    }


def per_query_ndcg(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """nDCG@k of each query of ``qrels`` (for paired comparisons between systems)."""
    return {qid: ndcg_at_k(run.get(qid, ()), relevance, k) for qid, relevance in qrels.items()}


def documents_by_best_chunk(chunk_documents: Sequence[str]) -> list[str]:
    """Collapse a best-first list of chunks' document ids to documents, best first.

    A document is ranked where its best (first) chunk is: max-pooling of chunk scores.
    """
    return _distinct(chunk_documents)


def _distinct(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
