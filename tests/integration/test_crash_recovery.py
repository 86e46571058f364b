"""A local stack killed at any instant of an ingestion loses nothing.

The stack runs as ``scripts/ragline dev`` in a process group of its own. A batch of real
10-Q PDFs is ingested once without interruption (the reference); then, per trial, the
batch is dropped into a new knowledge base and everything (the stack, its parse
workers and storage emulator, PostgreSQL) is SIGKILLed at a random instant of the
ingestion and restarted on the same data folder. Every document must end ``ready``
with exactly the reference's chunks. ``RAGLINE_CRASH_SEED`` replays a run (the seed
is printed); ``RAGLINE_CRASH_TRIALS`` changes the number of trials.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import psutil
import pytest

from scripts.bench.crash_recovery import run_drill, smallest_pdfs

pytestmark = pytest.mark.slow


def test_every_document_ends_ready_with_the_reference_chunks_after_kills(
    corpus: Path, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RAGLINE_CRASH_SEED") or random.SystemRandom().randrange(2**31))
    trials = int(os.environ.get("RAGLINE_CRASH_TRIALS", "10"))
    print(f"crash recovery: seed {seed} (RAGLINE_CRASH_SEED={seed} replays it)")
    files = smallest_pdfs(corpus, 10)

    _ingest_s, reference, results = run_drill(files, tmp_path, trials=trials, seed=seed)

    assert len(reference.statuses) == len(files)
    assert set(reference.statuses.values()) == {"ready"}, reference.statuses
    assert reference.stored_chunks == sum(map(len, reference.chunks.values())) > 0
    assert len(results) == trials >= 1
    for trial in results:
        assert set(trial.statuses.values()) == {"ready"}, (seed, trial)
        assert trial.matches_reference, (seed, trial)
    left = [
        process.pid
        for process in psutil.process_iter(["cmdline"])
        if any(str(tmp_path) in part for part in process.info["cmdline"] or [])
    ]
    assert not left, f"processes outlived the drill: {left}"
