"""Asking under ingestion: 16 concurrent askers for 60 s while a 20-PDF batch ingests.

A fresh local stack (embedded PostgreSQL + pgvector, the storage emulator, every
function, the in-process bus and task queue, parse workers) is served over HTTP on the
loopback interface (werkzeug's threaded server). A knowledge base of a few 10-Q PDFs is
ingested and ready first. Then, at the same instant, the 20 PDFs of the corpus are
uploaded into a second knowledge base (``POST .../documents``, one after another, as a
client would) and 16 askers (threads, each with its own ``requests.Session``) ask the
ready knowledge base questions (``POST /v1/ask``, JSON) back to back for 60 s. Answers
come from the offline extractive answerer (no model: what is measured is Ragline's
retrieval and answering while the pipeline competes for the same cores).

Reported: errors (any non-200 or failed request; the target is zero), ask latency
p50/p95/p99, asks per second, and the batch's time from its first upload until every
document is ready (polled through the API). Everything is bounded: the askers stop at
the deadline, every request has a timeout, the wait for the batch has a limit.

Usage: .venv/bin/python -m scripts.bench.ask_under_ingest [--seconds 60] [--askers 16]
    [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from scripts.bench.common import CORPUS, cache_dir, environment, percentile, write_section

SECTION = "ask_under_ingest"
READY_DOCUMENTS = 3
QUESTIONS = (
    "What was total net sales for the quarter?",
    "What are the main risk factors?",
    "How much cash and cash equivalents did the company hold?",
    "What was the gross margin percentage?",
    "How did operating expenses change compared to last year?",
    "What legal proceedings are disclosed?",
    "What was net income per diluted share?",
    "How much was spent on share repurchases?",
)
REQUEST_TIMEOUT_S = 120.0
BATCH_LIMIT_S = 1800.0


def pdfs(corpus: Path) -> list[Path]:
    """The corpus's PDFs, smallest first."""
    return sorted(corpus.glob("*.pdf"), key=lambda path: (path.stat().st_size, path.name))


class Client:
    """The served API, as an authenticated HTTP client."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def session(self) -> requests.Session:
        """A session with the caller's credential."""
        session = requests.Session()
        session.headers.update(self.headers)
        return session

    def create_kb(self, session: requests.Session, name: str) -> str:
        """Create a knowledge base; return its id."""
        response = session.post(
            f"{self.base_url}/v1/knowledge-bases", json={"name": name}, timeout=REQUEST_TIMEOUT_S
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def upload(self, session: requests.Session, kb_id: str, path: Path) -> str:
        """Upload ``path`` as multipart; return its document id."""
        with path.open("rb") as handle:
            response = session.post(
                f"{self.base_url}/v1/knowledge-bases/{kb_id}/documents",
                files={"file": (path.name, handle, "application/pdf")},
                timeout=REQUEST_TIMEOUT_S,
            )
        response.raise_for_status()
        return str(response.json()["document_id"])

    def statuses(self, session: requests.Session, kb_id: str) -> Counter[str]:
        """How many of the knowledge base's documents are in each status."""
        response = session.get(
            f"{self.base_url}/v1/knowledge-bases/{kb_id}/documents",
            params={"limit": 100},
            timeout=REQUEST_TIMEOUT_S,
        )
        response.raise_for_status()
        body = response.json()
        items = body.get("documents") or body.get("items") or []
        return Counter(str(item.get("status")) for item in items)

    def wait_ready(self, kb_id: str, count: int, limit_s: float) -> float | None:
        """Seconds until ``count`` documents are ready (None: a failure or the limit)."""
        started = time.monotonic()
        session = self.session()
        while time.monotonic() - started < limit_s:
            statuses = self.statuses(session, kb_id)
            if statuses["failed"]:
                print(f"failed documents: {dict(statuses)}", file=sys.stderr)
                return None
            if statuses["ready"] >= count:
                return time.monotonic() - started
            time.sleep(0.5)
        return None


class Askers:
    """``count`` threads asking questions back to back until a deadline."""

    def __init__(self, client: Client, kb_id: str, count: int) -> None:
        self._client = client
        self._kb_id = kb_id
        self._count = count
        self._lock = threading.Lock()
        # (seconds after the askers started, latency in ms) of every answered ask.
        self.asks: list[tuple[float, float]] = []
        self.errors: Counter[str] = Counter()
        self.started = 0.0

    @property
    def latencies_ms(self) -> list[float]:
        """Every answered ask's latency."""
        return [latency for _, latency in self.asks]

    def latencies_before(self, seconds: float) -> list[float]:
        """Latencies of the asks sent within ``seconds`` of the start."""
        return [latency for sent, latency in self.asks if sent <= seconds]

    def run(self, seconds: float) -> float:
        """Ask for ``seconds``; return the wall time the askers took."""
        deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(target=self._ask, args=(deadline, index), daemon=True)
            for index in range(self._count)
        ]
        self.started = started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + REQUEST_TIMEOUT_S + 30)
        return time.monotonic() - started

    def _ask(self, deadline: float, index: int) -> None:
        session = self._client.session()
        questions = itertools.cycle(QUESTIONS[index % len(QUESTIONS) :] + QUESTIONS)
        while time.monotonic() < deadline:
            body = {"knowledge_base_ids": [self._kb_id], "question": next(questions)}
            sent = time.monotonic() - self.started
            started = time.perf_counter()
            try:
                response = session.post(
                    f"{self._client.base_url}/v1/ask", json=body, timeout=REQUEST_TIMEOUT_S
                )
                ok = response.status_code == 200 and bool(response.json().get("answer"))
                kind = "ok" if ok else f"status {response.status_code}"
            except (requests.RequestException, ValueError) as error:
                kind = type(error).__name__
            elapsed_ms = (time.perf_counter() - started) * 1000
            with self._lock:
                if kind == "ok":
                    self.asks.append((sent, elapsed_ms))
                else:
                    self.errors[kind] += 1


def upload_batch(client: Client, kb_id: str, paths: list[Path], failures: list[str]) -> None:
    """Upload every file in turn (a client's batch upload); record failures."""
    session = client.session()
    for path in paths:
        try:
            client.upload(session, kb_id, path)
        except requests.RequestException as error:
            failures.append(f"{path.name}: {error}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--askers", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="10 s, 4 askers, 4 PDFs")
    args = parser.parse_args(argv)
    batch = pdfs(CORPUS)
    if args.quick:
        args.seconds, args.askers, batch = 10.0, 4, batch[:4]

    from scripts.localstack.stack import LocalStack, StackConfig
    from tests.support.stack import served

    # The extractive answerer: no model, whatever the caller's environment says.
    os.environ.pop("OPENAI_API_KEY", None)
    data = cache_dir(SECTION) / "stack"
    shutil.rmtree(data, ignore_errors=True)
    stack: Any = LocalStack(
        StackConfig(data_dir=data, port=0, sweep_interval_s=None, notify=False, drop_folder=False)
    ).start()
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        with served(stack.app) as base_url:
            result = measure(Client(base_url, stack.owner_token()), batch, args)
    finally:
        stack.stop()
    report(result, args, len(batch))
    return 0 if result["errors"] == 0 and result["batch_ready_s"] is not None else 1


def measure(client: Client, batch: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    """The ready knowledge base, then the askers and the batch at once."""
    session = client.session()
    ready_kb = client.create_kb(session, "ready")
    for path in batch[:READY_DOCUMENTS]:
        client.upload(session, ready_kb, path)
    if client.wait_ready(ready_kb, READY_DOCUMENTS, BATCH_LIMIT_S) is None:
        raise RuntimeError("the ready knowledge base did not become ready")
    batch_kb = client.create_kb(session, "batch")
    askers = Askers(client, ready_kb, args.askers)
    load_before = os.getloadavg()
    failures: list[str] = []
    uploader = threading.Thread(
        target=upload_batch, args=(client, batch_kb, batch, failures), daemon=True
    )
    ready_at: list[float | None] = []
    started = time.monotonic()
    uploader.start()
    waiter = threading.Thread(
        target=lambda: ready_at.append(client.wait_ready(batch_kb, len(batch), BATCH_LIMIT_S)),
        daemon=True,
    )
    waiter.start()
    asked_s = askers.run(args.seconds)
    load_during = os.getloadavg()
    uploader.join(BATCH_LIMIT_S)
    waiter.join(BATCH_LIMIT_S + 60)
    batch_ready_s = ready_at[0] if ready_at else None
    latencies = askers.latencies_ms
    # The asks sent while the batch was still ingesting (all of them if it outlasted them).
    during = askers.latencies_before(batch_ready_s if batch_ready_s is not None else asked_s)
    return {
        "errors": sum(askers.errors.values()) + len(failures),
        "error_kinds": dict(askers.errors),
        "upload_failures": failures,
        "asks": len(latencies),
        "asks_per_s": len(latencies) / asked_s if asked_s else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "asks_during_ingest": len(during),
        "p50_ms_during_ingest": percentile(during, 50),
        "p95_ms_during_ingest": percentile(during, 95),
        "batch_ready_s": batch_ready_s,
        "batch_done_within_asking": batch_ready_s is not None and batch_ready_s <= asked_s,
        "asked_s": asked_s,
        "elapsed_s": time.monotonic() - started,
        "load_before": list(load_before),
        "load_during": list(load_during),
    }


def report(result: dict[str, Any], args: argparse.Namespace, batch_size: int) -> None:
    """Write ``docs/bench/ask_under_ingest.{json,md}`` and print the table."""
    load = " / ".join(f"{value:.2f}" for value in result["load_before"])
    load_during = " / ".join(f"{value:.2f}" for value in result["load_during"])
    ready = result["batch_ready_s"]
    ready_text = f"{ready:.1f} s" if ready is not None else "not within the limit"
    cpus = environment()["cpus"]
    markdown = f"""## Asking while a batch ingests

{args.askers} askers (threads with `requests.Session`, loopback HTTP to the local stack's
threaded server) ask `POST /v1/ask` back to back for {args.seconds:.0f} s against a
knowledge base of {READY_DOCUMENTS} ready 10-Q filings, while {batch_size} 10-Q PDFs are
uploaded into a second one and run through parse, chunk, embed (`hashing-384`) and index.
Answers: the offline extractive answerer (no model call). One process serves everything
(the functions, the bus, the task queue); PDFs parse in worker processes.

| figure | value |
|---|---|
| errors (target: 0) | {result["errors"]} |
| asks | {result["asks"]} |
| asks/s | {result["asks_per_s"]:.1f} |
| ask p50 | {result["p50_ms"]:.0f} ms |
| ask p95 | {result["p95_ms"]:.0f} ms |
| ask p99 | {result["p99_ms"]:.0f} ms |
| asks sent while the batch ingested | {result["asks_during_ingest"]} |
| their p50 / p95 | {result["p50_ms_during_ingest"]:.0f} / {result["p95_ms_during_ingest"]:.0f} ms |
| batch: first upload to all {batch_size} ready | {ready_text} |

Measured on {cpus} cores shared with other work: load average (1/5/15 min) {load} before,
{load_during} at the end of the asking. Latencies include queueing behind the other
askers and the pipeline; they are comparable only between runs on a quiet machine.
"""
    write_section(
        SECTION,
        {
            key: result[key]
            for key in (
                "errors",
                "asks",
                "asks_per_s",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "p50_ms_during_ingest",
                "p95_ms_during_ingest",
            )
        }
        | {"batch_ready_s": ready, "batch_done_within_asking": result["batch_done_within_asking"]},
        markdown,
        settings={
            "askers": args.askers,
            "seconds": args.seconds,
            "ready_documents": READY_DOCUMENTS,
            "batch_documents": batch_size,
            "answerer": "extractive",
            "embedding_model": "hashing-384",
        },
        details={
            "error_kinds": result["error_kinds"],
            "upload_failures": result["upload_failures"],
            "max_ms": result["max_ms"],
            "asks_during_ingest": result["asks_during_ingest"],
            "asked_s": result["asked_s"],
            "elapsed_s": result["elapsed_s"],
            "load_before": result["load_before"],
            "load_during": result["load_during"],
        },
    )
    print(markdown)


if __name__ == "__main__":
    sys.exit(main())
