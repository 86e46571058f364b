"""The ingestion benchmark's pure helpers (no stack, no LlamaIndex)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from scripts.bench.ingest import (
    IntervalLog,
    chunk_limits,
    clip,
    parse_proc_stat,
    per_second,
    ratio,
    skipped_files,
    sqlalchemy_urls,
    tree_ticks,
    union_seconds,
    verdict,
)


def test_union_counts_overlaps_once() -> None:
    assert union_seconds([]) == 0.0
    assert union_seconds([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0)]) == pytest.approx(3.0)
    assert union_seconds([(3.0, 4.0), (0.0, 10.0), (2.0, 3.0)]) == pytest.approx(10.0)
    # Touching intervals merge; empty or reversed ones add nothing.
    assert union_seconds([(0.0, 1.0), (1.0, 2.0), (5.0, 5.0), (7.0, 6.0)]) == pytest.approx(2.0)


def test_clip_keeps_the_parts_inside_the_window() -> None:
    assert clip([(0.0, 2.0), (3.0, 5.0), (6.0, 7.0)], 1.0, 4.0) == [(1.0, 2.0), (3.0, 4.0)]
    assert clip([(0.0, 1.0)], 1.0, 2.0) == []


def test_interval_log_windows_and_ends() -> None:
    log = IntervalLog()
    log.record("parse", 0.0, 2.0)
    log.record("parse", 1.0, 3.0, ok=False)
    log.record("index", 2.5, 2.6)
    assert log.intervals("parse", 0.5, 2.5) == [(0.5, 2.0), (1.0, 2.5)]
    assert log.ends("parse") == [2.0]
    assert log.ends("parse", ok=False) == [3.0]
    assert log.count("parse", 0.5, 5.0) == 1
    assert log.count("parse", 0.0, 5.0, ok=True) == 1


def test_rates_and_ratios_are_nan_without_a_divisor() -> None:
    assert per_second(10, 2.0) == 5.0
    assert math.isnan(per_second(10, 0.0))
    assert ratio(10.0, 4.0) == 2.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))


def test_skipped_files_come_from_the_readers_printed_lines() -> None:
    printed = (
        "Failed to load file /corpus/2023 Q1 X.pdf with error: RetryError[<Future at 0x1"
        " state=finished raised PdfReadError>]. Skipping...\n"
        "something else\n"
        "Failed to load file /corpus/b.pdf with error: boom. Skipping...\n"
    )
    assert skipped_files(printed) == [
        {
            "file": "2023 Q1 X.pdf",
            "error": "RetryError[<Future at 0x1 state=finished raised PdfReadError>]",
        },
        {"file": "b.pdf", "error": "boom"},
    ]


def test_verdict_says_met_or_missed_and_by_how_much() -> None:
    assert verdict(12.0, 10.0, "x").startswith("**met**")
    missed = verdict(8.0, 10.0, "x")
    assert missed.startswith("**missed**") and "20% short" in missed
    assert verdict(math.nan, 10.0, "x").startswith("not measured")


def test_proc_stat_and_process_trees() -> None:
    # pid (comm with spaces) state ppid ... utime stime cutime cstime at fields 14-17.
    line = "42 (python -m x) S 7 1 1 0 -1 0 0 0 0 0 30 12 5 3 20 0 1 0 100 0 0"
    assert parse_proc_stat(line) == (7, 30 + 12 + 5 + 3)
    stats = {1: (0, 100), 10: (1, 5), 11: (10, 7), 12: (10, 1), 20: (1, 50), 30: (0, 9)}
    assert tree_ticks(stats, [10]) == 5 + 7 + 1
    assert tree_ticks(stats, [10, 30, 99]) == 5 + 7 + 1 + 9


def test_sqlalchemy_urls_for_a_unix_socket() -> None:
    sync, asynchronous = sqlalchemy_urls("postgresql://postgres@/ragline?host=/tmp/pg sock")
    assert sync == "postgresql+psycopg2://postgres@/ragline?host=/tmp/pg%20sock"
    assert asynchronous == "postgresql+asyncpg://postgres@/ragline?host=/tmp/pg%20sock"
    sync, _ = sqlalchemy_urls("postgresql://u@/db?host=/run/pg&port=5433")
    assert sync == "postgresql+psycopg2://u@/db?host=/run/pg&port=5433"


def test_chunk_limits_follow_the_chunk_step() -> None:
    assert chunk_limits(SimpleNamespace(max_input_tokens=8192), 500, 50) == (500, 50)
    assert chunk_limits(SimpleNamespace(max_input_tokens=254), 500, 50) == (254, 50)
    assert chunk_limits(SimpleNamespace(max_input_tokens=100), 500, 50) == (100, 25)


def test_the_probe_reads_step_and_model_intervals_from_the_product_spans() -> None:
    from scripts.bench.ingest import IntervalLog, probe_spans
    from shared.tracing import span, traced_step

    @traced_step("ragline.pipeline.parse")
    def parse(did_work: bool) -> bool:
        return did_work

    log = IntervalLog()
    with probe_spans(log):
        parse(True)
        parse(False)  # a redelivery: nothing to do
        with span("ragline.embeddings.compute", texts=3):
            pass
        with span("ragline.retrieval"):  # not a stage the benchmark reads
            pass
    parse(True)  # after the probe: not recorded
    assert [(label, ok) for label, _, _, ok in log.entries] == [
        ("parse", True),
        ("parse", False),
        ("model", True),
    ]
    assert all(start <= end for _, start, end, _ in log.entries)
    starts = [start for _, start, _, _ in log.entries]
    assert starts == sorted(starts), "intervals keep their order on the log's clock"
