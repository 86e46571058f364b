"""Two runs side by side: which questions got better, worse, or stayed the same."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.store.evaluations import EvaluationResult

# The metrics a comparison judges, and whether higher is better.
MAIN_METRICS: tuple[tuple[str, bool], ...] = (
    ("cites_only_expected", True),
    ("source_precision", True),
    ("source_recall", True),
    ("ndcg_at_10", True),
    ("recall_at_k", True),
    ("answer_f1", True),
    ("unsupported_citation_rate", False),
)
# Differences smaller than this are rounding, not change.
EPSILON = 1e-9


def _value(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None else float(value)


def _pairs(
    before: Sequence[EvaluationResult], after: Sequence[EvaluationResult]
) -> list[tuple[EvaluationResult | None, EvaluationResult | None]]:
    """Results matched by question text (repeated questions in order), then the rest."""
    waiting: dict[str, list[EvaluationResult]] = {}
    for result in after:
        waiting.setdefault(result.question, []).append(result)
    pairs: list[tuple[EvaluationResult | None, EvaluationResult | None]] = []
    for result in before:
        match = waiting.get(result.question)
        pairs.append((result, match.pop(0) if match else None))
    pairs.extend((None, result) for results in waiting.values() for result in results)
    return pairs


def compare_question(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One question's change: per metric ``{before, after, change}`` and a verdict.

    A metric counts when both runs define it. The verdict is ``better`` when some
    metric improved and none got worse, ``worse`` the other way round, ``mixed`` when
    both happened, ``same`` otherwise.

    Args:
        before: The question's metrics in the first run.
        after: Its metrics in the second run.
    """
    changes: dict[str, Any] = {}
    improved = worsened = False
    for name, higher_is_better in MAIN_METRICS:
        old, new = _value(before, name), _value(after, name)
        if old is None or new is None:
            continue
        delta = new - old if higher_is_better else old - new
        change = "same"
        if delta > EPSILON:
            change, improved = "better", True
        elif delta < -EPSILON:
            change, worsened = "worse", True
        changes[name] = {"before": old, "after": new, "change": change}
    verdict = (
        "mixed"
        if improved and worsened
        else "better"
        if improved
        else "worse"
        if worsened
        else "same"
    )
    return {"verdict": verdict, "metrics": changes}


def compare_runs(
    before: Sequence[EvaluationResult],
    after: Sequence[EvaluationResult],
    summaries: tuple[dict[str, Any] | None, dict[str, Any] | None],
) -> dict[str, Any]:
    """The diff of two runs: per question and overall.

    Args:
        before: The first run's results.
        after: The second run's results.
        summaries: Both runs' summaries.

    Returns:
        ``questions`` (each with its verdict; ``only_before``/``only_after`` for a
        question in one run, ``not_compared`` when either was not answered), the count
        of each verdict and the change of each overall number.
    """
    rows: list[dict[str, Any]] = []
    for old, new in _pairs(before, after):
        present = old or new
        row: dict[str, Any] = {"question": present.question if present else ""}
        if old is None or new is None:
            row["verdict"] = "only_after" if old is None else "only_before"
        elif old.status != "answered" or new.status != "answered":
            row["verdict"] = "not_compared"
        else:
            row.update(compare_question(old.metrics, new.metrics))
        rows.append(row)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    overall: dict[str, Any] = {}
    first, second = summaries[0] or {}, summaries[1] or {}
    for name in sorted(set(first) & set(second)):
        old, new = first[name], second[name]
        if isinstance(old, int | float) and isinstance(new, int | float):
            overall[name] = {"before": old, "after": new, "delta": new - old}
    return {"verdicts": counts, "overall": overall, "questions": rows}
