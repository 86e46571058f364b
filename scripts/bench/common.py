"""What every benchmark section shares: where results go, statistics, the environment.

Each section is a module run in its own fresh interpreter (``python -m
scripts.bench.<section>``). It writes ``docs/bench/<section>.json`` (its metrics and how
they were produced) and ``docs/bench/<section>.md`` (its part of the report), and may
save PNG plots beside them; ``scripts.bench.run`` then assembles
``docs/benchmarks.md`` and ``docs/benchmarks.json``. Caches (downloaded nothing: only
embeddings computed once, databases) live in ``.bench/``, which git ignores.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "sec-10q"
SCIFACT = SHARED / "bench" / "scifact"
RESULTS = REPO / "docs" / "bench"
CACHE = REPO / ".bench"


def cache_dir(name: str) -> Path:
    """A folder under ``.bench/`` for ``name`` (created)."""
    path = CACHE / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def median(values: Sequence[float]) -> float:
    """The median (NaN for no values)."""
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks (NaN if empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def environment() -> dict[str, Any]:
    """The machine a figure was measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def now() -> str:
    """The current UTC time, ISO 8601 (seconds)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def command() -> str:
    """The command that is running (as a reader would retype it)."""
    module = sys.modules["__main__"].__spec__
    name = module.name if module is not None else sys.argv[0]
    return " ".join([".venv/bin/python -m", name, *sys.argv[1:]])


def write_section(
    section: str,
    metrics: dict[str, Any],
    markdown: str,
    *,
    settings: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> Path:
    """Save a section's results: ``docs/bench/<section>.json`` and ``.md``.

    Args:
        section: The key under which ``metrics`` appear in ``docs/benchmarks.json``
            (e.g. ``"ingest"``).
        metrics: Flat numbers (and small dicts) that runs are compared by.
        markdown: The section of the report (a ``##`` heading, then tables and
            ``![plot](bench/<file>.png)`` references relative to ``docs/``).
        settings: What was measured how (corpus, sizes, repeats, database settings).
        details: Anything else worth keeping (raw samples, per-stage tables).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "section": section,
        "generated_at": now(),
        "command": command(),
        "environment": environment(),
        "settings": settings or {},
        "metrics": metrics,
        "details": details or {},
    }
    path = RESULTS / f"{section}.json"
    path.write_text(json.dumps(clean(record), indent=2, default=str) + "\n")
    (RESULTS / f"{section}.md").write_text(markdown.rstrip() + "\n")
    return path


def clean(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None, so the JSON is valid everywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    return value


def plot_path(name: str) -> Path:
    """Where a section saves a PNG plot (``docs/bench/<name>.png``)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{name}.png"


@contextmanager
def ref_worktree(ref: str) -> Iterator[Path]:
    """``ref`` checked out (detached) in a temporary git worktree, removed afterwards.

    Before/after comparisons run each side's own code: the ref here, the working tree
    beside it.
    """
    import shutil
    import subprocess
    import tempfile

    parent = Path(tempfile.mkdtemp(prefix="ragline-compare-"))
    path = parent / "ref"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), ref],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)],
            cwd=REPO,
            check=False,
            capture_output=True,
        )
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, check=False)
