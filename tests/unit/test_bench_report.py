"""The benchmark report: verdicts per target and the assembled JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.bench import run


def _section(results: Path, name: str, metrics: dict[str, object], markdown: str) -> None:
    record = {"section": name, "generated_at": "2026-11-21T08:00:00+00:00", "command": "x"}
    (results / f"{name}.json").write_text(json.dumps({**record, "metrics": metrics}))
    (results / f"{name}.md").write_text(markdown)


def test_report_says_plainly_which_targets_are_met_missed_or_unmeasured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "docs" / "bench"
    results.mkdir(parents=True)
    monkeypatch.setattr(run, "RESULTS", results)
    monkeypatch.setattr(run, "REPO", tmp_path)
    _section(results, "retrieval", {"p95_ms": 25.0, "recall_at_10": 0.97}, "## Retrieval\n")
    _section(
        results,
        "cold_start",
        {"all_deps_ms": 1000.0, "targets": {"parse": 400.0, "answer": 650.0, "manage": 600.0}},
        "## Cold start\n",
    )

    run.assemble(run.load_sections())

    summary = json.loads((tmp_path / "docs" / "benchmarks.json").read_text())
    assert summary["retrieval"]["p95_ms"] == 25.0
    assert summary["cold_start"]["targets"]["parse"] == 400.0
    report = (tmp_path / "docs" / "benchmarks.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in report.splitlines() if "|" in line}
    assert rows["Retrieval p95 at 100k"].endswith("| MISSED |")
    assert rows["Retrieval recall@10 at 100k"].endswith("| met |")
    assert rows["Answer overhead p50"].endswith("| NOT MEASURED |")
    assert rows["Cold start of `parse` vs all dependencies"].endswith("| met |")
    assert rows["Cold start of `answer` vs all dependencies"].endswith("| met |")  # model: 70%
    assert rows["Cold start of `manage` vs all dependencies"].endswith("| MISSED |")
    # Sections follow the order they run in: cold start first.
    assert report.index("## Cold start") < report.index("## Retrieval")
