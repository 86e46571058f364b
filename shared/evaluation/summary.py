"""A run's overall numbers from its per-question results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.evaluation.metrics import mean
from shared.store.evaluations import EvaluationResult

# Averaged over the answered questions where each is defined.
AVERAGED = ("source_precision", "source_recall", "ndcg_at_10", "recall_at_k", "answer_f1")


def summarize(results: Sequence[EvaluationResult]) -> dict[str, Any]:
    """The run's overall metrics.

    Rates and means are over the answered questions; each metric's mean leaves out the
    questions it is undefined for (no expected document, nothing cited, no reference).
    The unsupported-citation rate is over all citations of the run. ``by_tag`` repeats
    the rates and means for the questions of each tag.

    Args:
        results: Every question's result.
    """
    answered = [r for r in results if r.status == "answered"]
    citations = sum(int(r.metrics.get("citations") or 0) for r in answered)
    unsupported = sum(int(r.metrics.get("unsupported_citations") or 0) for r in answered)
    summary: dict[str, Any] = {
        "questions": len(results),
        "answered": len(answered),
        "failed": sum(r.status == "failed" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "cites_only_expected_rate": mean(r.metrics.get("cites_only_expected") for r in answered),
    }
    for name in AVERAGED:
        summary[name] = mean(r.metrics.get(name) for r in answered)
    summary["citations"] = citations
    summary["unsupported_citations"] = unsupported
    summary["unsupported_citation_rate"] = unsupported / citations if citations else None
    summary["by_tag"] = _by_tag(answered)
    return summary


def _by_tag(answered: Sequence[EvaluationResult]) -> dict[str, dict[str, Any]]:
    """Per tag: its answered questions and their means (a question counts for each tag)."""
    tags = sorted({tag for result in answered for tag in result.tags})
    groups: dict[str, dict[str, Any]] = {}
    for tag in tags:
        tagged = [r for r in answered if tag in r.tags]
        group: dict[str, Any] = {
            "questions": len(tagged),
            "cites_only_expected_rate": mean(r.metrics.get("cites_only_expected") for r in tagged),
        }
        for name in AVERAGED:
            group[name] = mean(r.metrics.get(name) for r in tagged)
        groups[tag] = group
    return groups
