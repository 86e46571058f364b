"""Crash recovery: SIGKILL the local stack mid-ingestion, restart it, time the recovery.

A drill runs ``scripts/ragline dev`` as a subprocess in its own process group on one
data folder. It ingests a batch of real PDFs through the drop folder once without
interruption (the reference), then, per trial, drops the batch into a new knowledge
base, kills everything (the stack, its parse workers and GCS emulator, and the
embedded PostgreSQL) with SIGKILL at a random instant of the ingestion, restarts the
stack on the same data folder and waits until every document is terminal. Each trial
must end with every document ``ready`` and exactly the reference's chunks (count, and
text hash per ordinal); the figure is the time from the kill to every document ready.

Short lease, stall and sweep settings (:data:`DRILL_ENV`) make recovery take seconds
rather than the production defaults' minutes. ``tests/integration/test_crash_recovery.py``
runs the same drill and asserts what this reports.

Usage: .venv/bin/python -m scripts.bench.crash_recovery [--trials 10] [--seed N] [--files 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from scripts.bench.common import CORPUS, REPO, environment, write_section
from scripts.localstack.stack import free_port
from shared.config import Settings
from shared.db.connection import url_connection_factory

# Seconds: a lease renewed every second, a stall after 4 s, a sweep every second.
DRILL_ENV = {
    "RAGLINE_LEASE_S": "3",
    "RAGLINE_STALL_AFTER_S": "4",
    "RAGLINE_SWEEP_INTERVAL_S": "1",
    "RAGLINE_MAX_SWEEPS": "3",
    "RAGLINE_DEFAULT_EMBEDDING_MODEL": "hashing-384",
    "PYTHONUNBUFFERED": "1",
}
TERMINAL = frozenset({"ready", "failed", "superseded"})

# A document's chunks: (ordinal, md5 of its text), in ordinal order.
ChunkSet = list[tuple[int, str]]


def smallest_pdfs(corpus: Path, count: int) -> list[Path]:
    """The ``count`` smallest PDFs of the corpus (real 10-Q filings), smallest first."""
    return sorted(corpus.glob("*.pdf"), key=lambda path: path.stat().st_size)[:count]


@dataclass
class KbState:
    """Where a knowledge base's documents are, read from the database."""

    statuses: dict[str, str]  # filename -> status of its latest version
    chunks: dict[str, ChunkSet]  # filename -> its active version's chunks
    stored_chunks: int  # every chunk row of the knowledge base, any version


@dataclass
class Trial:
    """One kill and recovery."""

    number: int
    kill_after_s: float
    stages_at_kill: dict[str, int]
    recovery_s: float
    statuses: dict[str, str]
    matches_reference: bool


@dataclass
class CrashDrill:
    """The local stack as a subprocess that can be killed and restarted on one data folder."""

    data: Path
    files: list[Path]
    env: dict[str, str] = field(default_factory=lambda: dict(DRILL_ENV))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, timeout_s: float = 300.0) -> None:
        """Start (or restart) the stack; return once it answers ``/healthz``."""
        self.port = self.port or free_port()
        log_path = self.data.parent / f"{self.data.name}-stack-{self.starts}.log"
        log = log_path.open("wb")
        self.starts += 1
        command = [str(REPO / "scripts" / "ragline"), "dev", "--data", str(self.data)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the stack exited with {self.process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the stack did not answer within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL the stack's process group, every descendant and the embedded PostgreSQL."""
        victims: list[psutil.Process] = []
        if self.process is not None:
            victims += _tree(self.process.pid)
        postmaster = self._postmaster_pid()
        if postmaster is not None:
            victims += _tree(postmaster)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=30)
        if self.process is not None:
            self.process.wait(timeout=30)
            self.process = None

    def drop(self, kb: str) -> None:
        """Put the batch into the drop folder under ``kb`` (each file appears whole).

        The drop folder is laid out as the bucket: ``<workspace>/<knowledge-base>/``;
        the drill uses the default workspace.
        """
        workspace = Settings.model_fields["default_workspace"].default
        folder = self.data / "drop" / str(workspace) / kb
        folder.mkdir(parents=True, exist_ok=True)
        for path in self.files:
            partial = folder / (path.name + ".part")
            shutil.copyfile(path, partial)
            partial.rename(folder / path.name)

    def state(self, kb: str) -> KbState:
        """The knowledge base's documents, their statuses and chunks."""
        connection = self._connect()
        try:
            statuses = {
                str(filename): str(status)
                for filename, status in connection.run(
                    "SELECT d.filename, coalesce(v.status, 'none') FROM documents d"
                    " JOIN knowledge_bases k ON k.id = d.kb_id"
                    " LEFT JOIN document_versions v ON v.id = d.latest_version_id"
                    " WHERE k.name = :kb",
                    kb=kb,
                )
            }
            chunks: dict[str, ChunkSet] = {}
            for filename, ordinal, digest in connection.run(
                "SELECT d.filename, c.ordinal, md5(c.text) FROM chunks c"
                " JOIN documents d ON d.id = c.document_id AND c.version_id = d.active_version_id"
                " JOIN knowledge_bases k ON k.id = d.kb_id WHERE k.name = :kb"
                " ORDER BY d.filename, c.ordinal",
                kb=kb,
            ):
                chunks.setdefault(str(filename), []).append((int(ordinal), str(digest)))
            stored = connection.run(
                "SELECT count(*) FROM chunks c JOIN knowledge_bases k ON k.id = c.kb_id"
                " WHERE k.name = :kb",
                kb=kb,
            )[0][0]
        finally:
            connection.close()
        return KbState(statuses, chunks, int(stored))

    def wait_terminal(self, kb: str, timeout_s: float = 600.0) -> KbState:
        """Wait until every file of the batch is a document with a terminal version."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                state = self.state(kb)
            except Exception:  # the database is starting
                state = KbState({}, {}, 0)
            done = len(state.statuses) == len(self.files) and all(
                status in TERMINAL for status in state.statuses.values()
            )
            if done:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kb} not finished after {timeout_s} s: {state.statuses}")
            time.sleep(0.1)

    def stages(self, kb: str) -> dict[str, int]:
        """How many of the batch's versions are in each status (files not yet seen: none)."""
        try:
            statuses = self.state(kb).statuses
        except Exception:
            return {}
        counts: dict[str, int] = {"none": len(self.files) - len(statuses)}
        for status in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        return {status: count for status, count in counts.items() if count}

    def _postmaster_pid(self) -> int | None:
        pid_file = self.data / "pg" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _connect(self) -> Any:
        lines = (self.data / "pg" / "postmaster.pid").read_text().splitlines()
        socket_dir = lines[4]
        return url_connection_factory(f"postgresql://postgres@/ragline?host={socket_dir}")()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def run_drill(
    files: list[Path], workdir: Path, *, trials: int, seed: int, log: Any = print
) -> tuple[float, KbState, list[Trial]]:
    """The reference run, then ``trials`` kills and recoveries; the stack is gone after.

    Returns:
        The reference ingestion's seconds, its state, and each trial.
    """
    rng = random.Random(seed)
    drill = CrashDrill(workdir / "data", files)
    results: list[Trial] = []
    try:
        drill.start()
        started = time.monotonic()
        drill.drop("reference")
        reference = drill.wait_terminal("reference")
        ingest_s = time.monotonic() - started
        log(f"reference: {len(files)} files in {ingest_s:.1f} s, {reference.stored_chunks} chunks")
        for number in range(trials):
            kb = f"trial-{number}"
            # Spread over the ingestion, from the drop itself to its last steps.
            kill_after_s = rng.uniform(0.0, ingest_s)
            drill.drop(kb)
            time.sleep(kill_after_s)
            stages = drill.stages(kb)
            drill.kill()
            killed = time.monotonic()
            drill.start()
            state = drill.wait_terminal(kb)
            recovery_s = time.monotonic() - killed
            trial = Trial(
                number,
                kill_after_s,
                stages,
                recovery_s,
                state.statuses,
                matches(state, reference),
            )
            results.append(trial)
            log(
                f"trial {number}: killed after {kill_after_s:.1f} s at {stages},"
                f" all terminal {recovery_s:.1f} s later, matches: {trial.matches_reference}"
            )
    finally:
        drill.kill()
    return ingest_s, reference, results


def matches(state: KbState, reference: KbState) -> bool:
    """Every document ready with exactly the reference's chunks, and no other chunk stored."""
    return (
        all(status == "ready" for status in state.statuses.values())
        and state.chunks == reference.chunks
        and state.stored_chunks == reference.stored_chunks
    )


def main(argv: list[str] | None = None) -> int:
    """Run the drill and write docs/bench/crash_recovery.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"crash recovery drill: seed {seed}", flush=True)
    files = smallest_pdfs(CORPUS, args.files)
    with tempfile.TemporaryDirectory(prefix="ragline-crash-") as workdir:
        ingest_s, reference, trials = run_drill(files, Path(workdir), trials=args.trials, seed=seed)
    recoveries = [trial.recovery_s for trial in trials]
    all_ok = all(trial.matches_reference for trial in trials)
    metrics = {
        "median_kill_to_ready_s": statistics.median(recoveries),
        "max_kill_to_ready_s": max(recoveries),
        "reference_ingest_s": ingest_s,
        "trials": len(trials),
        "trials_matching_reference": sum(trial.matches_reference for trial in trials),
    }
    rows = "\n".join(
        f"| {t.number} | {t.kill_after_s:.1f} | "
        + ", ".join(f"{stage} {count}" for stage, count in sorted(t.stages_at_kill.items()))
        + f" | {t.recovery_s:.1f} | {'yes' if t.matches_reference else 'NO'} |"
        for t in trials
    )
    pages = len(files)
    matching = metrics["trials_matching_reference"]
    markdown = f"""## Crash recovery

The local stack (`scripts/ragline dev`) ingests {pages} real 10-Q PDFs through the drop
folder ({reference.stored_chunks} chunks, hashing embedder) and is killed with SIGKILL,
PostgreSQL, parse workers and storage emulator included, at a random instant of the
ingestion; it restarts on the same data folder. Lease {DRILL_ENV["RAGLINE_LEASE_S"]} s,
stall {DRILL_ENV["RAGLINE_STALL_AFTER_S"]} s, sweep every
{DRILL_ENV["RAGLINE_SWEEP_INTERVAL_S"]} s (production: 600 s, 900 s, 5 min). Seed {seed}.

| figure | value |
|---|---|
| median time from kill to every document ready | {metrics["median_kill_to_ready_s"]:.1f} s |
| slowest recovery | {metrics["max_kill_to_ready_s"]:.1f} s |
| uninterrupted ingestion of the batch | {ingest_s:.1f} s |
| trials ending all ready with the reference's exact chunks | {matching} of {len(trials)} |

The recovery includes restarting the stack (PostgreSQL crash recovery, parse workers),
the notifier's rescan of the bucket, the dead attempts' leases running out and the
sweeper's re-drives, then the rest of the ingestion.

| trial | killed after (s) | versions by status at the kill | kill to all ready (s) | exact chunks |
|---|---|---|---|---|
{rows}
"""
    write_section(
        "crash_recovery",
        metrics,
        markdown,
        settings={"files": [path.name for path in files], "seed": seed, "env": DRILL_ENV},
        details={"trials": [trial.__dict__ for trial in trials], "environment": environment()},
    )
    print(markdown)
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
