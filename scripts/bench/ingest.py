"""Ingestion throughput: the sec-10q PDFs through Ragline's local pipeline and LlamaIndex.

What runs, in one process, against one embedded PostgreSQL server:

* **Ours.** A fresh local stack (``LocalStack`` with the default ``StackConfig``, as
  ``ragline dev`` runs it) in a temporary folder. Each repeat creates a knowledge base
  with the embedder, uploads every PDF through the HTTP API (werkzeug test client on the
  stack's one origin, one file after another), and waits until the pipeline is idle. End
  to end is first upload to the end of the last ``index`` call that marked a version
  ``ready``.
* **LlamaIndex.** ``SimpleDirectoryReader`` with its default PDF reader (pypdf, one
  document per page), then ``IngestionPipeline([SentenceSplitter, embedding])`` into a
  ``PGVectorStore`` (HNSW, cosine, m=16, ef_construction=64: Ragline's own index
  settings) on the same server. The embedding is Ragline's embedder wrapped as a
  ``BaseEmbedding``: the same object embeds on both sides. The splitter counts tokens
  with the same WordPiece tokenizer and the same limits as our chunker uses for that
  embedder (500/50 with hashing, 254/50 with MiniLM, whose input is 254 word pieces).
  End to end is reading the files to the vector store's last commit.

Stage figures. For each stage, ``busy`` is the union of the intervals during which at
least one call of that stage was running (wall seconds, no double counting of
concurrent calls); ``thread_s`` sums the calls. Ours: time inside the step functions
``parse_version``, ``chunk_version``, ``embed_batch`` and ``index_version``, read from
their ``ragline.pipeline.*`` spans with an SDK tracer provider (so
parse includes its download, the wait for the process-wide PDFium lock and the parsed
JSON's upload). LlamaIndex: read = ``load_data``; embed = inside the embedding's batch
calls; store = inside ``PGVectorStore.add``; split = the rest of ``pipeline.run``.
Pages and chunks per second of a stage divide the run's totals by its ``busy`` time.
End-to-end pages per second divide the corpus's pages (PDFium's count) by the wall time
on both sides, as the issue counts LlamaIndex; the pages each side actually stored are
reported too. CPU seconds (Linux) are those of this process, its children (parser and
emulator processes) and the PostgreSQL server's processes over the run.

Embedding share (the MiniLM target): the union of the intervals during which the
embedding model is computing (the ``ragline.embeddings.compute`` spans: inside
``SentenceTransformer.encode``; for the hashing embedder, inside its ``embed``), clipped
to the run, divided by the run's end-to-end wall time. Concurrent calls count once. The
model is loaded and warmed before any timing, for both sides.

Usage: .venv/bin/python -m scripts.bench.ingest [--repeats N] [--minilm-repeats N]
[--quick] [--corpus DIR] [--skip-minilm]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from scripts.bench.common import (
    CORPUS,
    RESULTS,
    clean,
    median,
    now,
    plot_path,
    write_section,
)

if TYPE_CHECKING:
    from scripts.localstack.stack import LocalStack

Interval = tuple[float, float]

STAGES = ("parse", "chunk", "embed", "index")
LLAMA_STAGES = ("read", "split", "embed", "store")
# Step functions as the handlers call them (module, attribute), timed in place.
STEP_FUNCTIONS = {
    "parse": ("functions.parse", "parse_version"),
    "chunk": ("functions.chunk", "chunk_version"),
    "embed": ("functions.embed", "embed_batch"),
    "index": ("functions.index", "index_version"),
}
# Per-document stage latency from the version's timestamps (queueing included).
STAGE_TIMESTAMPS = {
    "parse": ("parsing_at", "chunking_at"),
    "chunk": ("chunking_at", "embedding_at"),
    "embed": ("embedding_at", "indexing_at"),
    "index": ("indexing_at", "ready_at"),
}
EMBEDDERS = {"hash": "hashing-384", "minilm": "minilm"}
DIMENSION = 384
# Ragline's HNSW index (migration 0001), given to PGVectorStore as well.
HNSW = {"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 40}
# "Failed to load file <path> with error: <error>. Skipping..." (printed, not logged).
_SKIPPED = re.compile(r"Failed to load file (?P<path>.+?) with error: (?P<error>.*)\. Skipping")
QUICK_FILES = 4
TARGET_RATIO = 10.0
TARGET_EMBED_SHARE = 0.9


# --- pure helpers (unit-tested) ---------------------------------------------------------


def union_seconds(intervals: Iterable[Interval]) -> float:
    """Seconds covered by at least one of ``intervals`` (overlaps count once)."""
    total = 0.0
    current: list[float] | None = None
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = [start, end]
        else:
            current[1] = max(current[1], end)
    if current is not None:
        total += current[1] - current[0]
    return total


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    """The parts of ``intervals`` inside ``start..end`` (empty parts dropped)."""
    clipped = [(max(a, start), min(b, end)) for a, b in intervals]
    return [(a, b) for a, b in clipped if b > a]


def per_second(count: float, seconds: float) -> float:
    """``count / seconds``, NaN when there is no time to divide by."""
    return count / seconds if seconds > 0 else math.nan


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when either is missing or the divisor is 0."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


def skipped_files(printed: str) -> list[dict[str, str]]:
    """The files ``SimpleDirectoryReader`` reported as skipped in its printed output."""
    return [
        {"file": Path(match["path"]).name, "error": match["error"]}
        for match in _SKIPPED.finditer(printed)
    ]


def verdict(value: float, target: float, what: str) -> str:
    """A plain sentence: the target met or missed, and by how much."""
    if not math.isfinite(value):
        return f"not measured ({what})"
    if value >= target:
        return f"**met**: {value:.2f} against a target of {target:g} ({what})"
    return (
        f"**missed**: {value:.2f} against a target of {target:g}, "
        f"{(1 - value / target) * 100:.0f}% short ({what})"
    )


def parse_proc_stat(text: str) -> tuple[int, int]:
    """``(ppid, clock ticks of CPU)`` from a ``/proc/<pid>/stat`` line.

    The ticks are the process's user and system time plus those of its children it
    has already waited for, so a tree's total counts every process once.
    """
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    return ppid, sum(int(value) for value in fields[11:15])


def tree_ticks(stats: dict[int, tuple[int, int]], roots: Iterable[int]) -> int:
    """CPU ticks of ``roots`` and all their live descendants, given every process's stat."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    pending = [pid for pid in roots if pid in stats]
    while pending:
        pid = pending.pop()
        if pid not in seen:
            seen.add(pid)
            pending.extend(children.get(pid, []))
    return sum(stats[pid][1] for pid in seen)


class CpuMeter:
    """CPU seconds used so far by this process, its descendants and other process trees.

    Linux only (``/proc``); elsewhere :meth:`seconds` is NaN. Used around each run to
    say how much CPU it took whatever the machine's other load: here this process and
    its worker processes, plus the PostgreSQL server's processes.
    """

    def __init__(self, *roots: int) -> None:
        self.roots = (os.getpid(), *roots)
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def seconds(self) -> float:
        """The trees' CPU seconds so far (NaN without ``/proc``)."""
        proc = Path("/proc")
        if not (proc / "self" / "stat").exists():
            return math.nan
        stats: dict[int, tuple[int, int]] = {}
        for entry in proc.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stats[int(entry.name)] = parse_proc_stat((entry / "stat").read_text())
        return tree_ticks(stats, self.roots) / self.tick


# --- probes ------------------------------------------------------------------------------


@dataclass
class IntervalLog:
    """Thread-safe record of labelled intervals (``time.perf_counter`` seconds)."""

    entries: list[tuple[str, float, float, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, label: str, start: float, end: float, ok: bool = True) -> None:
        """Add one interval; ``ok`` says whether the call did its work."""
        with self.lock:
            self.entries.append((label, start, end, ok))

    def intervals(self, label: str, start: float, end: float) -> list[Interval]:
        """The intervals of ``label`` clipped to ``start..end``."""
        with self.lock:
            found = [(a, b) for name, a, b, _ in self.entries if name == label]
        return clip(found, start, end)

    def ends(self, label: str, *, ok: bool = True) -> list[float]:
        """When the calls of ``label`` ended (only those with the given ``ok``)."""
        with self.lock:
            return [b for name, _, b, good in self.entries if name == label and good is ok]

    def count(self, label: str, start: float, end: float, *, ok: bool | None = None) -> int:
        """How many calls of ``label`` started inside ``start..end`` (with that ``ok``)."""
        with self.lock:
            return sum(
                1
                for name, a, _, good in self.entries
                if name == label and start <= a < end and (ok is None or good is ok)
            )


# The product's spans (shared/tracing.py) each interval is read from.
STEP_SPANS = {f"ragline.pipeline.{step}": step for step in STEP_FUNCTIONS}
MODEL_SPAN = "ragline.embeddings.compute"


class _SpanLog(SpanProcessor):
    """An OpenTelemetry span processor writing the spans the benchmark reads to a log."""

    def __init__(self, log: IntervalLog) -> None:
        self.log = log
        # Spans carry wall-clock nanoseconds; the log is in perf_counter seconds.
        self.offset = time.perf_counter() - time.time_ns() / 1e9

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: Any) -> None:
        """Record a step's or the model's interval."""
        label = STEP_SPANS.get(span.name) or ("model" if span.name == MODEL_SPAN else None)
        if label is None or span.start_time is None or span.end_time is None:
            return
        ok = bool((span.attributes or {}).get("ragline.did_work", True))
        self.log.record(
            label, span.start_time / 1e9 + self.offset, span.end_time / 1e9 + self.offset, ok
        )

    def shutdown(self) -> None:
        """Nothing held."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered."""
        return True


@contextlib.contextmanager
def probe_spans(log: IntervalLog) -> Iterator[None]:
    """Record the pipeline's step spans and the embedding model's compute spans.

    Read from the product's own tracing (an SDK provider, as a deployment would install
    one; a process has one provider, so an SDK provider already there is reused), not by
    wrapping its functions.
    """
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    processor = _SpanLog(log)
    provider.add_span_processor(processor)
    try:
        yield
    finally:
        processor.log = IntervalLog()  # a processor cannot be removed: detach its log


# --- ours ----------------------------------------------------------------------------------


def stage_table(
    log: IntervalLog, start: float, end: float, pages: int, chunks: int, labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Busy seconds, thread-seconds and page/chunk rates of each stage in ``start..end``."""
    table: dict[str, dict[str, float]] = {}
    for label in labels:
        intervals = log.intervals(label, start, end)
        busy = union_seconds(intervals)
        table[label] = {
            "calls": float(len(intervals)),
            "busy_s": busy,
            "thread_s": sum(b - a for a, b in intervals),
            "pages_per_s": per_second(pages, busy),
            "chunks_per_s": per_second(chunks, busy),
        }
    return table


def run_ours(
    stack: LocalStack,
    model: str,
    pdfs: Sequence[Path],
    log: IntervalLog,
    tag: str,
    cpu: CpuMeter,
    corpus_pages: int,
) -> dict[str, Any]:
    """Ingest ``pdfs`` into a new knowledge base through the HTTP API; return figures."""
    from werkzeug.test import Client

    client = Client(stack.as_owner())
    created = client.post(
        "/v1/knowledge-bases", json={"name": f"bench-{tag}", "embedding_model": model}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    kb = created.json
    assert kb is not None
    cpu_before = cpu.seconds()
    started = time.perf_counter()
    for pdf in pdfs:
        form = {"file": (io.BytesIO(pdf.read_bytes()), pdf.name)}
        response = client.post(f"/v1/knowledge-bases/{kb['id']}/documents", data=form)
        assert response.status_code == 202, response.get_data(as_text=True)
    uploaded = time.perf_counter()
    stack.wait_idle(7200, settle_s=0.5)
    idle = time.perf_counter()
    cpu_used = cpu.seconds() - cpu_before
    rows = stack.database.run(
        "SELECT status, coalesce(page_count, 0), coalesce(chunk_count, 0), parsing_at,"
        " chunking_at, embedding_at, indexing_at, ready_at"
        " FROM document_versions WHERE kb_id = CAST(:k AS uuid)",
        k=kb["id"],
    )
    columns = ["status", "pages", "chunks", "parsing_at", "chunking_at", "embedding_at",
               "indexing_at", "ready_at"]  # fmt: skip
    versions = [dict(zip(columns, row, strict=True)) for row in rows]
    ready_ends = [end for end in log.ends("index") if started <= end <= idle]
    finished = max(ready_ends) if ready_ends else idle
    wall = finished - started
    pages = sum(v["pages"] for v in versions)
    chunks = sum(v["chunks"] for v in versions)
    stages = stage_table(log, started, finished, pages, chunks, STAGES)
    for stage, (first, last) in STAGE_TIMESTAMPS.items():
        latencies = [(v[last] - v[first]).total_seconds() for v in versions if v[first] and v[last]]
        stages[stage]["median_latency_s"] = median(latencies)
    model_busy = union_seconds(log.intervals("model", started, finished))
    return {
        "system": "ragline",
        "model": model,
        "documents": len(versions),
        "ready": sum(1 for v in versions if v["status"] == "ready"),
        "pages": pages,
        "chunks": chunks,
        "upload_s": uploaded - started,
        "wall_s": wall,
        "pages_per_s": per_second(corpus_pages, wall),
        "ingested_pages_per_s": per_second(pages, wall),
        "chunks_per_s": per_second(chunks, wall),
        "cpu_s": cpu_used,
        "pages_per_cpu_s": per_second(corpus_pages, cpu_used),
        "model_busy_s": model_busy,
        "embed_share": ratio(model_busy, wall),
        # Step calls that did the step's work: more than one per document means a
        # duplicate message redid it (both the upload and the bucket's finalize event
        # start the pipeline of an uploaded file).
        "working_calls": {
            stage: log.count(stage, started, idle, ok=True) for stage in ("parse", "chunk")
        },
        "stages": stages,
        "timeline": {
            label: [
                (round(a - started, 3), round(b - started, 3))
                for a, b in log.intervals(label, started, finished)
            ]
            for label in (*STAGES, "model")
        },
    }


def warm_ours(stack: LocalStack, model: str, pdf: Path, log: IntervalLog) -> None:
    """One small document through the pipeline (imports, connections), not timed."""
    tag = f"warm-{model}-{time.monotonic_ns()}"
    run_ours(stack, model, [pdf], log, tag, CpuMeter(), count_pages([pdf]))


# --- LlamaIndex ---------------------------------------------------------------------------


def sqlalchemy_urls(database_url: str) -> tuple[str, str]:
    """psycopg2 and asyncpg SQLAlchemy URLs for a ``postgresql://user@/db?host=/dir`` URL.

    The embedded server listens on a unix socket only; libpq (psycopg2) and asyncpg
    both take the socket's directory as ``host``.
    """
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    host = query.get("host", [""])[0]
    port = query.get("port", [str(parts.port or "")])[0]
    user = parts.username or "postgres"
    database = parts.path.lstrip("/")
    suffix = f"?host={quote(host, safe='/')}" + (f"&port={port}" if port else "")
    return (
        f"postgresql+psycopg2://{user}@/{database}{suffix}",
        f"postgresql+asyncpg://{user}@/{database}{suffix}",
    )


def llama_embedding(embedder: Any, batch_size: int, log: IntervalLog) -> Any:
    """Ragline's ``embedder`` as a LlamaIndex ``BaseEmbedding`` (same object, same vectors).

    Batch calls are recorded as ``li.embed`` intervals.
    """
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr

    class RaglineEmbedding(BaseEmbedding):
        _embedder: Any = PrivateAttr()

        def __init__(self, inner: Any, **kwargs: Any) -> None:
            super().__init__(model_name=inner.model, embed_batch_size=batch_size, **kwargs)
            self._embedder = inner

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            started = time.perf_counter()
            try:
                return list(self._embedder.embed(texts))
            finally:
                log.record("li.embed", started, time.perf_counter())

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return list(self._embedder.embed([query])[0])

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return RaglineEmbedding(embedder)


def llama_store(database_url: str, table: str, log: IntervalLog) -> Any:
    """A ``PGVectorStore`` on our server (schema ``llamaindex``), ``add`` recorded."""
    from llama_index.vector_stores.postgres import PGVectorStore

    class TimedPGVectorStore(PGVectorStore):
        def add(self, nodes: Sequence[Any], **kwargs: Any) -> list[str]:
            started = time.perf_counter()
            try:
                return list(super().add(list(nodes), **kwargs))
            finally:
                log.record("li.store", started, time.perf_counter())

    sync_url, async_url = sqlalchemy_urls(database_url)
    return TimedPGVectorStore.from_params(
        connection_string=sync_url,
        async_connection_string=async_url,
        schema_name="llamaindex",
        table_name=table,
        embed_dim=DIMENSION,
        hnsw_kwargs={**HNSW, "hnsw_dist_method": "vector_cosine_ops"},
    )


def run_llamaindex(
    database_url: str,
    embedder: Any,
    pdfs: Sequence[Path],
    log: IntervalLog,
    tag: str,
    cpu: CpuMeter,
    corpus_pages: int,
    *,
    chunk_tokens: int,
    overlap_tokens: int,
    batch_size: int,
) -> dict[str, Any]:
    """Read, split, embed and store ``pdfs`` the LlamaIndex way; return figures."""
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter

    tokenizer = embedder.counter.tokenizer

    def tokenize(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False).ids)

    store = llama_store(database_url, f"bench_{tag}", log)
    embedding = llama_embedding(embedder, batch_size, log)
    splitter = SentenceSplitter(
        chunk_size=chunk_tokens, chunk_overlap=overlap_tokens, tokenizer=tokenize
    )
    printed = io.StringIO()
    cpu_before = cpu.seconds()
    started = time.perf_counter()
    # The reader reports a file it cannot read by printing a line and skipping it.
    with contextlib.redirect_stdout(printed):
        documents = SimpleDirectoryReader(input_files=[str(pdf) for pdf in pdfs]).load_data()
    read = time.perf_counter()
    pipeline = IngestionPipeline(transformations=[splitter, embedding], vector_store=store)
    nodes = pipeline.run(documents=documents)
    finished = time.perf_counter()
    cpu_used = cpu.seconds() - cpu_before
    log.record("li.read", started, read)
    wall = finished - started
    pages = len(documents)
    chunks = len(nodes)
    stages = stage_table(log, started, finished, pages, chunks, ("li.read", "li.embed", "li.store"))
    named = {"read": stages["li.read"], "embed": stages["li.embed"], "store": stages["li.store"]}
    split_s = (finished - read) - named["embed"]["busy_s"] - named["store"]["busy_s"]
    named["split"] = {
        "calls": 1.0,
        "busy_s": split_s,
        "thread_s": split_s,
        "pages_per_s": per_second(pages, split_s),
        "chunks_per_s": per_second(chunks, split_s),
    }
    model_busy = union_seconds(log.intervals("model", started, finished))
    loaded = {Path(str(doc.metadata.get("file_path", ""))).name for doc in documents}
    skipped = skipped_files(printed.getvalue())
    return {
        "system": "llamaindex",
        "model": embedder.model,
        "documents": len(loaded),
        "pages": pages,
        "chunks": chunks,
        "wall_s": wall,
        # The corpus's pages, as the issue's own figure counts them (LlamaIndex is
        # credited with the pages of the files it skipped); and the pages it stored.
        "pages_per_s": per_second(corpus_pages, wall),
        "ingested_pages_per_s": per_second(pages, wall),
        "chunks_per_s": per_second(chunks, wall),
        "cpu_s": cpu_used,
        "pages_per_cpu_s": per_second(corpus_pages, cpu_used),
        "model_busy_s": model_busy,
        "embed_share": ratio(model_busy, wall),
        "skipped": skipped,
        "missing": sorted(pdf.name for pdf in pdfs if pdf.name not in loaded),
        "stages": {stage: named[stage] for stage in LLAMA_STAGES},
    }


# --- the run --------------------------------------------------------------------------------


def chunk_limits(embedder: Any, kb_tokens: int, kb_overlap: int) -> tuple[int, int]:
    """The chunk size and overlap our chunk step uses for ``embedder`` (see chunk_version)."""
    tokens = min(kb_tokens, embedder.max_input_tokens)
    return tokens, min(kb_overlap, tokens // 4)


def count_pages(pdfs: Sequence[Path]) -> int:
    """The PDFs' pages, as PDFium (our parser) counts them."""
    import pypdfium2 as pdfium

    total = 0
    for path in pdfs:
        document = pdfium.PdfDocument(str(path))
        try:
            total += len(document)
        finally:
            document.close()
    return total


def model_alone(embedder: Any, texts: Sequence[str], batch_size: int) -> dict[str, float]:
    """The embedder's own rate on ``texts``, one batch after another on one thread."""
    started = time.perf_counter()
    for first in range(0, len(texts), batch_size):
        embedder.embed(texts[first : first + batch_size])
    seconds = time.perf_counter() - started
    return {"texts": float(len(texts)), "seconds": seconds, "chunks_per_s": len(texts) / seconds}


@dataclass
class Plan:
    """What to run."""

    pdfs: list[Path]
    repeats: dict[str, int]
    quick: bool


def run(plan: Plan) -> dict[str, Any]:
    """Start the stack, run every (embedder, repeat) on both sides, return raw results."""
    from scripts.localstack.stack import LocalStack, StackConfig
    from shared.config import get_settings
    from shared.embeddings import get_embedder

    results: dict[str, Any] = {"ours": {}, "llamaindex": {}, "alone": {}}
    results["load"] = {"start": _load_average()}
    log = IntervalLog()
    with tempfile.TemporaryDirectory(prefix="ragline-bench-ingest-") as data:
        stack = LocalStack(StackConfig(data_dir=Path(data), drop_folder=False)).start()
        try:
            database_url = stack.settings.database_url
            server = stack.database.one(
                "SELECT current_setting('server_version'),"
                " (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            )
            results["server"] = {"postgres": server[0], "pgvector": server[1]} if server else {}
            stack.database.run("CREATE SCHEMA IF NOT EXISTS llamaindex")
            settings = get_settings()
            results["settings"] = {
                "embed_batch_size": settings.embed_batch_size,
                "chunk_tokens": settings.chunk_tokens,
                "chunk_overlap": settings.chunk_overlap,
                "bus_workers": stack.config.workers,
                "task_workers": stack.config.workers,
                "parse_processes": stack.parser.workers,
            }
            postmaster = int((Path(data) / "pg" / "postmaster.pid").read_text().split()[0])
            cpu = CpuMeter(postmaster)  # this process, its workers, and PostgreSQL
            smallest = min(plan.pdfs, key=lambda p: p.stat().st_size)
            corpus_pages = count_pages(plan.pdfs)
            results["corpus_pages"] = corpus_pages
            with probe_spans(log):
                for key, model in EMBEDDERS.items():
                    if not plan.repeats.get(key):
                        continue
                    embedder = get_embedder(model, DIMENSION)
                    embedder.embed(["warm up the model"])
                    tokens, overlap = chunk_limits(
                        embedder, settings.chunk_tokens, settings.chunk_overlap
                    )
                    warm_ours(stack, model, smallest, log)
                    run_llamaindex(
                        database_url,
                        embedder,
                        [smallest],
                        log,
                        f"warm_{key}",
                        cpu,
                        count_pages([smallest]),
                        chunk_tokens=tokens,
                        overlap_tokens=overlap,
                        batch_size=settings.embed_batch_size,
                    )
                    for repeat in range(plan.repeats[key]):
                        # Alternate who goes first, so drift in the machine's load
                        # does not always favour the same side.
                        for side in ("ours", "llamaindex")[:: 1 if repeat % 2 == 0 else -1]:
                            tag = f"{key}_{repeat}"
                            print(f"{side} {tag} ...", flush=True)
                            if side == "ours":
                                outcome = run_ours(
                                    stack, model, plan.pdfs, log, tag, cpu, corpus_pages
                                )
                            else:
                                outcome = run_llamaindex(
                                    database_url,
                                    embedder,
                                    plan.pdfs,
                                    log,
                                    tag,
                                    cpu,
                                    corpus_pages,
                                    chunk_tokens=tokens,
                                    overlap_tokens=overlap,
                                    batch_size=settings.embed_batch_size,
                                )
                            results[side].setdefault(key, []).append(outcome)
                    if key == "minilm":
                        texts = [
                            row[0]
                            for row in stack.database.run(
                                "SELECT c.text FROM chunks c JOIN knowledge_bases k"
                                " ON k.id = c.kb_id WHERE k.name = 'bench-minilm_0'"
                                " ORDER BY c.id LIMIT 640"
                            )
                        ]
                        if texts:
                            results["alone"][key] = model_alone(
                                embedder, texts, settings.embed_batch_size
                            )
        finally:
            stack.stop()
    results["load"]["end"] = _load_average()
    return results


def _load_average() -> float:
    """The machine's 1-minute load average (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


# --- the report -------------------------------------------------------------------------------


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Medians over repeats and the headline metrics."""
    summary: dict[str, Any] = {}
    for side in ("ours", "llamaindex"):
        for key, runs in results[side].items():
            stage_names = STAGES if side == "ours" else LLAMA_STAGES
            summary[f"{side}_{key}"] = {
                "runs": len(runs),
                "pages": median([r["pages"] for r in runs]),
                "chunks": median([r["chunks"] for r in runs]),
                "documents": median([r["documents"] for r in runs]),
                "wall_s": median([r["wall_s"] for r in runs]),
                "wall_s_all": [round(r["wall_s"], 2) for r in runs],
                "pages_per_s": median([r["pages_per_s"] for r in runs]),
                "ingested_pages_per_s": median([r["ingested_pages_per_s"] for r in runs]),
                "chunks_per_s": median([r["chunks_per_s"] for r in runs]),
                "cpu_s": median([r["cpu_s"] for r in runs]),
                "pages_per_cpu_s": median([r["pages_per_cpu_s"] for r in runs]),
                "embed_share": median([r["embed_share"] for r in runs]),
                "stages": {
                    stage: {
                        metric: median([r["stages"][stage][metric] for r in runs])
                        for metric in runs[0]["stages"][stage]
                    }
                    for stage in stage_names
                },
            }
    return summary


def metrics_from(summary: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """The flat numbers runs are compared by."""

    def get(key: str, metric: str) -> float:
        return float(summary.get(key, {}).get(metric, math.nan))

    metrics: dict[str, Any] = {
        "pages_per_s_hash": get("ours_hash", "pages_per_s"),
        "pages_per_s_minilm": get("ours_minilm", "pages_per_s"),
        "chunks_per_s_hash": get("ours_hash", "chunks_per_s"),
        "chunks_per_s_minilm": get("ours_minilm", "chunks_per_s"),
        "wall_s_hash": get("ours_hash", "wall_s"),
        "wall_s_minilm": get("ours_minilm", "wall_s"),
        "llamaindex_pages_per_s_hash": get("llamaindex_hash", "pages_per_s"),
        "llamaindex_pages_per_s_minilm": get("llamaindex_minilm", "pages_per_s"),
        "llamaindex_wall_s_hash": get("llamaindex_hash", "wall_s"),
        "llamaindex_wall_s_minilm": get("llamaindex_minilm", "wall_s"),
        "ratio_vs_llamaindex_hash": ratio(
            get("ours_hash", "pages_per_s"), get("llamaindex_hash", "pages_per_s")
        ),
        "ratio_vs_llamaindex_minilm": ratio(
            get("ours_minilm", "pages_per_s"), get("llamaindex_minilm", "pages_per_s")
        ),
        # LlamaIndex counted by the pages it stored, not the corpus's (it skips files).
        "llamaindex_ingested_pages_per_s_hash": get("llamaindex_hash", "ingested_pages_per_s"),
        "ratio_vs_llamaindex_ingested_hash": ratio(
            get("ours_hash", "ingested_pages_per_s"),
            get("llamaindex_hash", "ingested_pages_per_s"),
        ),
        "cpu_s_hash": get("ours_hash", "cpu_s"),
        "cpu_s_minilm": get("ours_minilm", "cpu_s"),
        "llamaindex_cpu_s_hash": get("llamaindex_hash", "cpu_s"),
        "llamaindex_cpu_s_minilm": get("llamaindex_minilm", "cpu_s"),
        # Pages per CPU-second, ours over theirs: the same comparison without the
        # machine's other load (and without our use of both cores).
        "cpu_efficiency_ratio_hash": ratio(
            get("ours_hash", "pages_per_cpu_s"), get("llamaindex_hash", "pages_per_cpu_s")
        ),
        "cpu_efficiency_ratio_minilm": ratio(
            get("ours_minilm", "pages_per_cpu_s"), get("llamaindex_minilm", "pages_per_cpu_s")
        ),
        "embed_share_minilm": get("ours_minilm", "embed_share"),
        "llamaindex_embed_share_minilm": get("llamaindex_minilm", "embed_share"),
    }
    for key in ("hash", "minilm"):
        # Each repeat's pair (both sides back to back), in repeat order.
        pairs = zip(results["ours"].get(key, []), results["llamaindex"].get(key, []), strict=False)
        metrics[f"ratio_vs_llamaindex_{key}_by_repeat"] = {
            f"repeat_{number}": ratio(ours["pages_per_s"], theirs["pages_per_s"])
            for number, (ours, theirs) in enumerate(pairs, start=1)
        }
        if f"ours_{key}" not in summary:
            continue
        for stage, figures in summary[f"ours_{key}"]["stages"].items():
            metrics[f"{stage}_pages_per_s_{key}"] = figures["pages_per_s"]
            metrics[f"{stage}_chunks_per_s_{key}"] = figures["chunks_per_s"]
    runs = results["llamaindex"].get("hash") or results["llamaindex"].get("minilm") or []
    if runs:
        metrics["llamaindex_files_skipped"] = len(runs[0]["missing"])
    alone = results["alone"].get("minilm")
    if alone:
        metrics["minilm_alone_chunks_per_s"] = alone["chunks_per_s"]
        metrics["minilm_pipeline_efficiency"] = ratio(
            get("ours_minilm", "chunks_per_s"), alone["chunks_per_s"]
        )
    return metrics


def _fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _times(value: float) -> str:
    return f"{value:.2f}x" if math.isfinite(value) else "n/a"


def _repeats_met(values: Sequence[float], target: float) -> str:
    """ ", met in k of n repeats (...)" when the repeats disagree with each other."""
    met = [value for value in values if math.isfinite(value) and value >= target]
    if not met or len(met) == len(values):
        return ""
    return (
        f"; {len(met)} of {len(values)} same-run pairs reached it ({_each(met)}), the others"
        " did not, and the median decides"
    )


def _each(values: Iterable[float]) -> str:
    return ", ".join(_times(value) for value in values) or "n/a"


def plot(summary: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """Save the plots; return their file names (relative to ``docs/bench``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    keys = [key for key in EMBEDDERS if f"ours_{key}" in summary]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    for slot, (side, label, colour) in enumerate(
        (("ours", "Ragline (local stack)", "#2b6cb0"), ("llamaindex", "LlamaIndex", "#dd6b20"))
    ):
        values = [summary.get(f"{side}_{key}", {}).get("pages_per_s", math.nan) for key in keys]
        positions = [i + (slot - 0.5) * width for i in range(len(keys))]
        bars = left.bar(positions, values, width, label=label, color=colour)
        left.bar_label(bars, fmt="%.1f", fontsize=8)
    left.set_xticks(range(len(keys)), [EMBEDDERS[key] for key in keys])
    left.set_ylabel("pages/s, end to end (median)")
    left.set_title("End-to-end throughput")
    left.legend(fontsize=8)
    # Where the time goes: seconds per stage (busy time), stacked.
    rows = [(side, key) for key in keys for side in ("ours", "llamaindex")]
    labels = [f"{'Ragline' if s == 'ours' else 'LlamaIndex'}\n{EMBEDDERS[k]}" for s, k in rows]
    colours = {
        "parse": "#2c5282",
        "read": "#2c5282",
        "chunk": "#38a169",
        "split": "#38a169",
        "embed": "#d69e2e",
        "index": "#9f7aea",
        "store": "#9f7aea",
    }
    widest = max(
        max(
            summary[f"{side}_{key}"]["wall_s"],
            sum(f["busy_s"] for f in summary[f"{side}_{key}"]["stages"].values()),
        )
        for side, key in rows
        if f"{side}_{key}" in summary
    )
    for index, (side, key) in enumerate(rows):
        stages = summary.get(f"{side}_{key}", {}).get("stages", {})
        offset = 0.0
        for stage, figures in stages.items():
            seconds = figures["busy_s"]
            right.barh(index, seconds, left=offset, color=colours[stage], edgecolor="white")
            if seconds > 0.07 * widest:
                right.text(offset + seconds / 2, index, stage, ha="center", va="center",
                           fontsize=7, color="white")  # fmt: skip
            offset += seconds
        wall = summary.get(f"{side}_{key}", {}).get("wall_s", math.nan)
        right.plot([wall, wall], [index - 0.4, index + 0.4], color="black", linewidth=1.5)
    right.set_yticks(range(len(rows)), labels, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("seconds: busy time per stage, stacked (black tick: end-to-end wall)")
    right.set_title("Where the time goes (median run)")
    figure.tight_layout()
    path = plot_path("ingest_throughput")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    names.append(path.name)

    # Our pipeline over time: how many calls of each stage run at once.
    timelines = [(key, runs[len(runs) // 2]) for key, runs in results["ours"].items() if runs]
    if timelines:
        figure, axes = plt.subplots(len(timelines), 1, figsize=(11, 2.6 * len(timelines)))
        axes_list = list(axes) if len(timelines) > 1 else [axes]
        for axis, (key, run_) in zip(axes_list, timelines, strict=True):
            lanes = (*STAGES, "model")
            for lane, stage in enumerate(lanes):
                spans = [(a, b - a) for a, b in run_["timeline"][stage]]
                axis.broken_barh(spans, (lane - 0.4, 0.8), color=colours.get(stage, "#e53e3e"),
                                 alpha=0.45)  # fmt: skip
            axis.set_yticks(range(len(lanes)), [*STAGES, "model computing"])
            axis.invert_yaxis()
            axis.set_xlim(0, run_["wall_s"])
            axis.set_title(
                f"Ragline, {EMBEDDERS[key]}: calls in flight per stage (darker = more at once);"
                f" embedding share {run_['embed_share'] * 100:.1f}%",
                fontsize=9,
            )
        axes_list[-1].set_xlabel("seconds since the first upload")
        figure.tight_layout()
        path = plot_path("ingest_timeline")
        figure.savefig(path, dpi=110)
        plt.close(figure)
        names.append(path.name)
    return names


def markdown(
    plan: Plan,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    results: dict[str, Any],
    plots: list[str],
    command: str,
    date: str,
) -> str:
    """The report section."""
    pages = results.get("corpus_pages", math.nan)
    load = results.get("load", {})
    lines = [
        "## Ingestion throughput",
        "",
    ]
    if plan.quick:
        lines += [
            f"> **Quick run** ({len(plan.pdfs)} of the PDFs, one repeat): a smoke test of"
            " the benchmark, not the reported figures.",
            "",
        ]
    lines += [
        f"The {len(plan.pdfs)} PDFs of `../shared/corpus/sec-10q` ({_fmt(pages, 0)} pages as"
        " PDFium counts them) through Ragline's local pipeline and through LlamaIndex's"
        " `IngestionPipeline`, in the same process, on the same embedded PostgreSQL"
        f" {results.get('server', {}).get('postgres', '?')} + pgvector"
        f" {results.get('server', {}).get('pgvector', '?')}, with the same embedder object.",
        "",
        f"- Command: `{command}`",
        f"- Date: {date}; repeats (median reported): hashing {plan.repeats.get('hash', 0)},"
        f" MiniLM {plan.repeats.get('minilm', 0)}; sides alternate who goes first.",
        f"- Machine: {os.cpu_count()} cores, shared (1-minute load average"
        f" {_fmt(load.get('start', math.nan))} at the start, {_fmt(load.get('end', math.nan))}"
        " at the end); both sides ran in the same run, alternately, so any contention"
        " fell on both.",
        "- Ragline: a fresh local stack (`LocalStack` defaults: each Pub/Sub subscription"
        f" pushed by {results['settings']['bus_workers']} workers of its own,"
        f" {results['settings']['task_workers']} embed-task workers,"
        f" {results['settings']['parse_processes']} PDF parser processes, the GCS emulator in"
        " its own process), every file uploaded through the HTTP API one after another; end"
        " to end = first upload to the last version `ready`; chunks"
        f" {results['settings']['chunk_tokens']}/{results['settings']['chunk_overlap']} tokens"
        f" (MiniLM: 254/50, its input limit), embed tasks of"
        f" {results['settings']['embed_batch_size']} chunks.",
        "- LlamaIndex: `SimpleDirectoryReader(input_files=...)` with its default PDF reader"
        " (pypdf, a document per page), `IngestionPipeline([SentenceSplitter, embedding],"
        " vector_store=PGVectorStore)`; the splitter counts our WordPiece tokens with our"
        " limits (hashing 500/50, MiniLM 254/50); the embedding wraps Ragline's embedder"
        f" (batches of {results['settings']['embed_batch_size']}); PGVectorStore with HNSW"
        " (cosine, m=16, ef_construction=64, Ragline's settings) in schema `llamaindex`.",
        "",
        "### End to end",
        "",
        "| embedder | system | files stored | pages stored | chunks | wall (s), median (all"
        " runs) | pages/s | chunks/s | CPU-s | pages per CPU-s | embedding share |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, model in EMBEDDERS.items():
        for side, name in (("ours", "Ragline"), ("llamaindex", "LlamaIndex")):
            row = summary.get(f"{side}_{key}")
            if row is None:
                continue
            walls = ", ".join(f"{w:.1f}" for w in row["wall_s_all"])
            lines.append(
                f"| {model} | {name} | {_fmt(row['documents'], 0)} | {_fmt(row['pages'], 0)} |"
                f" {_fmt(row['chunks'], 0)} | {_fmt(row['wall_s'])} ({walls}) |"
                f" {_fmt(row['pages_per_s'])} | {_fmt(row['chunks_per_s'])} |"
                f" {_fmt(row['cpu_s'])} | {_fmt(row['pages_per_cpu_s'], 2)} |"
                f" {_fmt(row['embed_share'] * 100)}% |"
            )
    lines += [
        "",
        f"pages/s = the corpus's {_fmt(pages, 0)} pages ÷ wall, on both sides, as the issue"
        " counts LlamaIndex (credited with the pages of any file it skipped); CPU-s = CPU"
        " time of this process, its child processes and the PostgreSQL server during the"
        " run (LlamaIndex's also includes the idle stack's bucket polling, a few per cent"
        " at most).",
        "",
        "Ragline ÷ LlamaIndex, same embedder, same run: hashing"
        f" **{_times(metrics['ratio_vs_llamaindex_hash'])}**, MiniLM"
        f" **{_times(metrics['ratio_vs_llamaindex_minilm'])}** (pages/s; that is LlamaIndex's"
        " wall time over ours for the same files; each repeat's pair, in order: hashing"
        f" {_each(metrics['ratio_vs_llamaindex_hash_by_repeat'].values())}). Counting only"
        " the pages each side stored:"
        f" hashing {_times(metrics['ratio_vs_llamaindex_ingested_hash'])}. Per CPU-second,"
        " which the machine's other load and the number of cores each side can use do not"
        f" change: hashing {_times(metrics['cpu_efficiency_ratio_hash'])}, MiniLM"
        f" {_times(metrics['cpu_efficiency_ratio_minilm'])}.",
        "",
    ]
    runs = results["llamaindex"].get("hash") or results["llamaindex"].get("minilm") or []
    if runs:
        skipped = runs[0]["skipped"]
        missing = runs[0]["missing"]
        if missing:
            reasons = {entry["file"]: entry["error"] for entry in skipped}
            lines.append(
                f"LlamaIndex skipped {len(missing)} of {len(plan.pdfs)} files by default,"
                " printing one line each and carrying on (its PDF reader retries a failing"
                " file 3 times first):"
            )
            lines.append("")
            lines += [f"- `{name}`: {reasons.get(name, 'no message')}" for name in missing]
        else:
            lines.append("LlamaIndex read every file.")
        lines.append("")
    redone = [
        (key, run_["working_calls"][stage] - run_["documents"], stage)
        for key, runs_ in results["ours"].items()
        for run_ in runs_
        for stage in ("parse", "chunk")
    ]
    if any(extra > 0 for _, extra, _ in redone):
        worst = {
            stage: max(extra for _, extra, s in redone if s == stage)
            for stage in ("parse", "chunk")
        }
        lines += [
            "Duplicate work on our side, counted and left in: in the worst run"
            f" {worst['parse']} parse and {worst['chunk']} chunk step calls redid a step a"
            f" document had already been given ({len(plan.pdfs)} documents). An uploaded"
            " file's pipeline is started twice, by the upload function and by the bucket's"
            " finalize event; while the first parse message waits for a parser the version"
            " is still `received`, so the second start publishes parse again, and"
            " `parse_version` accepts a version that is already `parsing`, so the file is"
            " parsed twice.",
            "",
        ]
    for key, model in EMBEDDERS.items():
        for side, name, stage_names in (
            ("ours", "Ragline", STAGES),
            ("llamaindex", "LlamaIndex", LLAMA_STAGES),
        ):
            row = summary.get(f"{side}_{key}")
            if row is None:
                continue
            lines += [
                f"### Per stage: {name}, {model}",
                "",
                "| stage | busy (s) | thread-s | pages/s | chunks/s |"
                + (" median latency per document (s) |" if side == "ours" else ""),
                "|---|---|---|---|---|" + ("---|" if side == "ours" else ""),
            ]
            for stage in stage_names:
                figures = row["stages"][stage]
                extra = f" {_fmt(figures['median_latency_s'], 2)} |" if side == "ours" else ""
                lines.append(
                    f"| {stage} | {_fmt(figures['busy_s'], 2)} | {_fmt(figures['thread_s'], 2)}"
                    f" | {_fmt(figures['pages_per_s'])} | {_fmt(figures['chunks_per_s'])} |" + extra
                )
            lines.append("")
    lines += [
        "Busy = seconds during which at least one call of the stage ran (concurrent calls"
        " count once); thread-s = the calls' seconds summed; a stage's rates are the run's"
        " pages and chunks over its busy time. Ragline's stages are the step functions"
        " (parse includes the download, waiting for the process-wide PDFium lock and the"
        " parsed JSON's upload); they overlap in time, so they add up to more than the wall."
        " LlamaIndex's run one after another: read = `load_data`, embed = inside the"
        " embedding's batch calls, store = inside `PGVectorStore.add`, split = the rest of"
        " `pipeline.run`. Embedding share = union of the intervals in which the model"
        " computes (inside `SentenceTransformer.encode`; hashing: inside `embed`) ÷ end-to-end"
        " wall.",
        "",
    ]
    alone = results["alone"].get("minilm")
    if alone:
        lines += [
            f"MiniLM alone, one thread of batches of {results['settings']['embed_batch_size']}"
            f" on {int(alone['texts'])} of the run's chunks: {alone['chunks_per_s']:.1f}"
            f" chunks/s; the pipeline's end-to-end rate is"
            f" {metrics.get('minilm_pipeline_efficiency', math.nan) * 100:.0f}% of that.",
            "",
        ]
    lines += [f"![Ingestion throughput and stages](bench/{name})" for name in plots[:1]]
    lines += ["", *[f"![Ragline pipeline timeline](bench/{name})" for name in plots[1:]], ""]
    lines += [
        "### Targets",
        "",
        "- At least 10x LlamaIndex's end-to-end throughput with the hashing embedder, all"
        f" {len(plan.pdfs)} files: "
        + verdict(
            metrics["ratio_vs_llamaindex_hash"],
            TARGET_RATIO,
            "Ragline pages/s ÷ LlamaIndex pages/s, same run",
        )
        + f"; Ragline ingested {_fmt(summary.get('ours_hash', {}).get('documents', 0), 0)}"
        f" of {len(plan.pdfs)} files"
        + _repeats_met(list(metrics["ratio_vs_llamaindex_hash_by_repeat"].values()), TARGET_RATIO)
        + ".",
        "- With MiniLM, at least 90% of the wall time inside the embedding model: "
        + verdict(
            metrics["embed_share_minilm"] * 100
            if math.isfinite(metrics["embed_share_minilm"])
            else math.nan,
            TARGET_EMBED_SHARE * 100,
            "percent of Ragline's end-to-end wall time with MiniLM computing",
        )
        + ".",
    ]
    return "\n".join(lines)


def rerender(path: Path) -> None:
    """Rewrite the section's report and plots from its recorded results (no new run).

    For a change in how results are reported: the figures, the command and the date
    stay the recorded run's; the JSON says when it was re-rendered.
    """
    record = json.loads(path.read_text())
    settings, details = record["settings"], record["details"]
    corpus = Path(settings["corpus"])
    plan = Plan(
        pdfs=[corpus / name for name in settings["files"]],
        repeats=settings["repeats"],
        quick=settings["quick"],
    )

    def nan(value: Any) -> Any:
        if value is None:
            return math.nan
        if isinstance(value, dict):
            return {key: nan(item) for key, item in value.items()}
        if isinstance(value, list):
            return [nan(item) for item in value]
        return value

    runs = nan(details["runs"])
    for key, timeline in details.get("timelines", {}).items():
        runs["ours"][key][len(runs["ours"][key]) // 2]["timeline"] = timeline
    results: dict[str, Any] = {
        **runs,
        "alone": {"minilm": details["minilm_alone"]} if details.get("minilm_alone") else {},
        "settings": settings,
        "server": settings.get("server", {}),
        "load": settings.get("load_average") or {},
        "corpus_pages": settings.get("corpus_pages"),
    }
    summary = summarise(results)
    metrics = metrics_from(summary, results)
    plots = plot(summary, results)
    text = markdown(
        plan, summary, metrics, results, plots, record["command"], settings["started_at"]
    )
    record.update(metrics=metrics, rerendered_at=now())
    record["details"]["summary"] = summary
    path.write_text(json.dumps(clean(record), indent=2, default=str) + "\n")
    path.with_suffix(".md").write_text(text.rstrip() + "\n")
    print(text)


def main() -> None:
    """Run the benchmark and write the ``ingest`` section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats with hashing-384")
    parser.add_argument("--minilm-repeats", type=int, default=1, help="repeats with MiniLM")
    parser.add_argument("--skip-minilm", action="store_true", help="hashing only")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_FILES} PDFs, one repeat each (smoke test)"
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a folder of PDFs")
    parser.add_argument(
        "--rerender",
        action="store_true",
        help="rewrite docs/bench/ingest.md and the plots from docs/bench/ingest.json",
    )
    args = parser.parse_args()
    if args.rerender:
        rerender(RESULTS / "ingest.json")
        return
    pdfs = sorted(args.corpus.glob("*.pdf"))
    if not pdfs:
        raise SystemExit(f"no PDFs in {args.corpus}")
    repeats = {"hash": args.repeats, "minilm": 0 if args.skip_minilm else args.minilm_repeats}
    if args.quick:
        # Spread over companies and quarters (the names sort by quarter, then ticker).
        pdfs = pdfs[:: len(pdfs) // QUICK_FILES + 1][:QUICK_FILES]
        repeats = {key: min(1, count) for key, count in repeats.items()}
    plan = Plan(pdfs=pdfs, repeats=repeats, quick=args.quick)
    from scripts.bench.common import command

    date = now()
    results = run(plan)
    summary = summarise(results)
    metrics = metrics_from(summary, results)
    plots = plot(summary, results)
    text = markdown(plan, summary, metrics, results, plots, command(), date)
    write_section(
        "ingest",
        metrics,
        text,
        settings={
            "corpus": str(args.corpus),
            "files": [pdf.name for pdf in pdfs],
            "repeats": repeats,
            "quick": args.quick,
            "started_at": date,
            **results["settings"],
            "corpus_pages": results.get("corpus_pages"),
            "load_average": results.get("load"),
            "server": results.get("server", {}),
            "llamaindex": {
                "reader": "SimpleDirectoryReader default (PDFReader, pypdf)",
                "splitter": "SentenceSplitter, WordPiece token counts, our chunk limits",
                "vector_store": "PGVectorStore, HNSW " + json.dumps(HNSW),
            },
        },
        details={
            "summary": summary,
            "runs": {
                side: {
                    key: [{k: v for k, v in r.items() if k != "timeline"} for r in runs]
                    for key, runs in results[side].items()
                }
                for side in ("ours", "llamaindex")
            },
            "timelines": {
                key: runs[len(runs) // 2]["timeline"] for key, runs in results["ours"].items()
            },
            "minilm_alone": results["alone"].get("minilm"),
        },
    )
    print(text)
    print(json.dumps({k: v for k, v in metrics.items()}, indent=2, default=str))


if __name__ == "__main__":
    main()
