"""The vector benchmark's pure helpers: recall, document runs, task batches."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench.vectors import batches, rate, recall_at_k, split_runs

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_benchmark_loads_no_heavy_dependency() -> None:
    # A fresh interpreter: other tests of this session may have loaded them already.
    probe = (
        "import sys, scripts.bench.vectors;"
        " print(sorted(m for m in ('numpy', 'torch', 'matplotlib', 'pg8000') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("found", "exact", "ties", "expected"),
    [
        ([1, 2, 3], [1, 2, 3], (), 1.0),
        ([3, 2, 1], [1, 2, 3], (), 1.0),  # order inside the top k does not matter
        ([1, 9, 3], [1, 2, 3], (), 2 / 3),
        ([1, 9, 3], [1, 2, 3], (9,), 1.0),  # as close as the k-th neighbour: not a miss
        ([1, 1, 1], [1, 2, 3], (), 1 / 3),  # a duplicate counts once
        ([], [1, 2, 3], (), 0.0),
        ([4, 5], [], (), 1.0),  # nothing to find
        ([1, 2, 3, 4], [1, 2, 3, 4], (), 1.0),
    ],
)
def test_recall_at_k(
    found: list[int], exact: list[int], ties: tuple[int, ...], expected: float
) -> None:
    assert recall_at_k(found, exact, 3, ties=ties) == pytest.approx(expected)


def test_recall_looks_only_at_the_first_k_found() -> None:
    assert recall_at_k([9, 8, 7, 1, 2, 3], [1, 2, 3], 3) == 0.0
    assert recall_at_k([1, 2], [1, 2, 3], 3) == pytest.approx(2 / 3)


def test_split_runs_covers_everything_in_order() -> None:
    runs = split_runs(10, 3)
    assert [len(run) for run in runs] == [4, 3, 3]
    assert [i for run in runs for i in run] == list(range(10))
    assert [len(run) for run in split_runs(2, 4)] == [1, 1, 0, 0]
    with pytest.raises(ValueError):
        split_runs(5, 0)


def test_batches_cut_like_chunk_version() -> None:
    assert batches(0, 9, 4) == [(0, 3), (4, 7), (8, 9)]
    assert batches(0, 0, 64) == [(0, 0)]
    with pytest.raises(ValueError):
        batches(0, 5, 0)


def test_rate() -> None:
    assert rate(100, 2.0) == 50.0
    assert math.isnan(rate(5, 0.0))
