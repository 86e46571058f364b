"""The access-predicate comparison: its sides, ratios, verdict and targets."""

from __future__ import annotations

from typing import Any

from scripts.bench import access_predicate, run
from scripts.bench.answer_overhead import compare_markdown, compare_sides


def _side(principal: str, retrieve: tuple[float, float], ask: tuple[float, float]) -> Any:
    def part(p50: float, p95: float) -> dict[str, Any]:
        return {"requests": 10, "total": {"p50": p50, "p95": p95, "mean": p50}}

    return {
        "traced": principal != "none",
        "principal": principal,
        "retrieve": part(*retrieve),
        "first": part(*ask),
    }


def _results(limited_retrieve_p95: float, limited_ask_p50: float) -> dict[str, Any]:
    return {
        "before": _side("none", (20.0, 40.0), (50.0, 90.0)),
        "after: owner": _side("owner", (21.0, 42.0), (52.0, 95.0)),
        "after: limited": _side("limited", (22.0, limited_retrieve_p95), (limited_ask_p50, 99.0)),
    }


def test_the_ref_asks_as_the_first_principal_and_the_working_tree_as_each() -> None:
    assert compare_sides(["owner"]) == [("before", "owner"), ("after", "owner")]
    assert compare_sides(["owner", "limited"]) == [
        ("before", "owner"),
        ("after: owner", "owner"),
        ("after: limited", "limited"),
    ]


def test_ratios_are_over_the_before_side_and_decide_the_verdict() -> None:
    within = access_predicate.metrics_of(_results(46.0, 55.0), "9f2bce3", "1 / 1 / 1")
    assert within["retrieve_p95_ratio_limited"] == 1.15
    assert within["ask_total_p50_ratio_limited"] == 1.1
    assert within["retrieve_p95_ratio_owner"] == 1.05
    assert within["retrieve_p95_ms_before"] == 40.0
    assert within["within_limit"] is True

    # Retrieval p95 50% slower for the limited member: over the bar.
    over = access_predicate.metrics_of(_results(60.0, 55.0), "9f2bce3", "1 / 1 / 1")
    assert over["retrieve_p95_ratio_limited"] == 1.5
    assert over["within_limit"] is False


def test_the_tables_show_every_side_with_its_principal_and_ratio() -> None:
    table = compare_markdown(_results(46.0, 55.0), "9f2bce3", "1 / 1 / 1", 3)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if "|" in line}
    assert rows["after: limited"].endswith("| 1.10x | 1.15x |")
    assert "| before | none |" in rows["before"]
    assert rows["total p50 / before"] == "| total p50 / before | - | 1.04x | 1.10x |"


def test_the_report_checks_the_limited_members_ratios_against_the_bar() -> None:
    metrics = access_predicate.metrics_of(_results(60.0, 55.0), "9f2bce3", "1 / 1 / 1")
    rows = {row[0]: row for row in run.verdicts({"access_predicate": {"metrics": metrics}})}
    retrieval = rows["Retrieval p95, limited member (grant predicate) vs before identity"]
    answer = rows["Answer overhead p50, limited member (grant predicate) vs before identity"]
    assert retrieval[2:] == ("1.5", "MISSED")
    assert answer[2:] == ("1.1", "met")


def test_the_plans_keep_the_lines_of_the_access_checks() -> None:
    plan = "\n".join(
        [
            "Hash Join  (actual time=1.0..2.0 rows=8.00 loops=1)",
            "  InitPlan 1",
            "    ->  Seq Scan on kb_grants g  (actual time=0.006..0.006 rows=1.00 loops=1)",
            "  ->  Index Scan using chunks_pkey on chunks c  (rows=8.00 loops=1)",
            "Execution Time: 2.5 ms",
        ]
    )
    assert access_predicate.plan_lines(plan) == [
        "  InitPlan 1",
        "    ->  Seq Scan on kb_grants g  (actual time=0.006..0.006 rows=1.00 loops=1)",
        "Execution Time: 2.5 ms",
    ]
    section = "\n".join(access_predicate.plans_markdown({"limited": plan}))
    assert "As limited:" in section and "kb_grants g" in section and "chunks_pkey" not in section
