"""The full-text arm's alternatives on SciFact: quality (nDCG@10) against cost, one run.

Reads the database the SciFact benchmark ingested (``.bench/scifact/stack-5183docs``:
5,183 abstracts, 10,077 chunks, MiniLM), asks its 300 test claims through the
product's statement builders and runs the hybrid statement with each variant of the
full-text arm:

* ``before``: the arm this change replaced: every chunk containing any word of the
  question scored, document frequencies counted from those chunks at query time
  (:func:`scripts.bench.scale.before_text_arm_sql`);
* ``all``: statistics from ``kb_terms``/``kb_text_stats``, every matching chunk scored
  (``SearchPlan.postings`` None: what a small scope gets);
* ``<n>``: statistics from ``kb_terms``, candidates rarest word first within ``n``
  postings (``TEXT_POSTINGS`` is one of them).

Each variant's full-text ranking is scored like the SciFact benchmark's (a document by
its best chunk, nDCG@10 over the test qrels); its cost is the hybrid statement's
latency (p50/p95, one client) and the chunks it scored.

Usage: ``.venv/bin/python -m scripts.bench.text_arm [--budgets 250,500,1000,2000]``
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from scripts.bench.common import cache_dir, median, percentile, write_section
from scripts.bench.metrics import documents_by_best_chunk, evaluate

log = logging.getLogger("bench.text_arm")

BEFORE_NDCG = 0.684  # SciFact full text, docs/benchmarks.md before this change
TOP_K = 100  # as the SciFact benchmark asks (400 candidates per arm)


def main(argv: Sequence[str] | None = None) -> None:
    """Run every variant over the SciFact claims; write ``docs/bench/text_arm.*``."""
    from scripts.bench import scale, scifact
    from scripts.localstack.stack import release_postgres, start_postgres
    from shared.db.connection import Database, url_connection_factory
    from shared.retrieval import search
    from shared.retrieval.fusion import reciprocal_rank_fusion
    from shared.retrieval.search import RetrievalRequest, hybrid_query
    from shared.store.search import ModelInScope

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="250,500,1000,2000")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cache = cache_dir("scifact")
    scifact.install_cached_minilm(cache / "minilm.sqlite")
    pg_dir = cache / "stack-5183docs" / "pg"
    running = (pg_dir / "postmaster.pid").exists()
    url = f"postgresql://postgres@/ragline?host={pg_dir}" if running else start_postgres(pg_dir)
    database = Database(url_connection_factory(url), size=2)
    from shared.db.migrate import migrate

    migrate(database)
    data = scifact.load()
    kb_id = str(database.scalar("SELECT id::text FROM knowledge_bases ORDER BY created_at LIMIT 1"))
    workspace = str(
        database.scalar(
            "SELECT w.name FROM workspaces w JOIN knowledge_bases k ON k.workspace_id = w.id"
            " WHERE k.id = CAST(:k AS uuid)",
            k=kb_id,
        )
    )
    corpus_of = {
        str(document): str(filename).rsplit(".", 1)[0]
        for document, filename in database.run(
            "SELECT id::text, filename FROM documents WHERE kb_id = CAST(:k AS uuid)", k=kb_id
        )
    }
    model = ModelInScope(name="minilm", dimension=384, kb_ids=[kb_id])
    queries = {}
    for query_id, claim in data.queries.items():
        request = RetrievalRequest(query=claim, kb_ids=[kb_id], workspace=workspace, top_k=TOP_K)
        queries[query_id] = hybrid_query(database, request, model, None)
    variants: list[tuple[str, int | None, bool]] = [("before", None, True), ("all", None, False)]
    variants += [(budget, int(budget), False) for budget in args.budgets.split(",")]
    results: dict[str, dict[str, Any]] = {}
    for name, budget, before in variants:
        run: dict[str, list[str]] = {}
        fused_run: dict[str, list[str]] = {}
        samples, scored = [], []
        for query_id, query in queries.items():
            planned = replace(query, plan=replace(query.plan, postings=budget))
            started = time.perf_counter()
            rows = scale.run_hybrid(database, planned, before)
            samples.append((time.perf_counter() - started) * 1000)
            text = sorted((r for r in rows if r.rank is not None), key=lambda r: (-r.rank, r.id))
            scored.append(float(len(text)))
            ranked = documents_by_best_chunk([r.document_id for r in text])
            run[query_id] = [corpus_of[d] for d in ranked][:TOP_K]
            # The hybrid ranking as retrieve() fuses the two arms (routing off).
            vector = sorted((r for r in rows if r.distance is not None), key=lambda r: r.distance)
            document_of = {r.id: r.document_id for r in rows}
            fused = reciprocal_rank_fusion([[r.id for r in vector], [r.id for r in text]])
            fused_documents = documents_by_best_chunk([document_of[c] for c, _ in fused[:TOP_K]])
            fused_run[query_id] = [corpus_of[d] for d in fused_documents][:TOP_K]
        quality = evaluate(run, data.qrels, ndcg_k=10, recall_k=100)
        hybrid = evaluate(fused_run, data.qrels, ndcg_k=10, recall_k=100)
        results[name] = {
            "ndcg10": quality["ndcg@10"],
            "recall100": quality["recall@100"],
            "hybrid_ndcg10": hybrid["ndcg@10"],
            "p50_ms": median(samples),
            "p95_ms": percentile(samples, 95),
            "text_rows_p50": median(scored),
        }
        log.info("%s: %s", name, results[name])
    database.close()
    if not running:
        release_postgres(pg_dir)
    chosen = str(search.TEXT_POSTINGS)
    metrics = {f"ndcg10_fts_{name}": figures["ndcg10"] for name, figures in results.items()}
    metrics.update({f"p95_ms_{name}": figures["p95_ms"] for name, figures in results.items()})
    metrics["ndcg10_fts_chosen"] = results.get(chosen, results["all"])["ndcg10"]
    metrics["ndcg10_hybrid_before"] = results["before"]["hybrid_ndcg10"]
    metrics["ndcg10_hybrid_chosen"] = results.get(chosen, results["all"])["hybrid_ndcg10"]
    lines = [
        "## Full-text arm: the alternatives on SciFact",
        "",
        "The 300 SciFact test claims over the 10,077 chunks the SciFact benchmark ingested;"
        " each variant's full-text ranking (a document by its best chunk) and the hybrid"
        " statement's latency, in one run. *before*: every chunk containing any word scored,"
        " document frequencies counted at query time; *all*: statistics from `kb_terms`,"
        " every matching chunk scored; a number: candidates rarest word first within that"
        f" many postings (`TEXT_POSTINGS` = {chosen}).",
        "",
        "| Variant | full text nDCG@10 | full text recall@100 | hybrid (RRF) nDCG@10 |"
        " hybrid p50 (ms) | hybrid p95 (ms) | full-text rows (p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figures in results.items():
        lines.append(
            f"| {name} | {figures['ndcg10']:.3f} | {figures['recall100']:.3f}"
            f" | {figures['hybrid_ndcg10']:.3f}"
            f" | {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f}"
            f" | {figures['text_rows_p50']:.0f} |"
        )
    lines += [
        "",
        "**The choice.** Statistics per knowledge base (`kb_terms`, `kb_text_stats`, kept"
        " by a trigger on `documents` in the transaction that activates, archives or"
        " removes a version) give every word's document frequency with one index lookup,"
        " so the arm no longer has to read every chunk containing a word just to count"
        " it; candidates rarest word first then bound the chunks it reads by the"
        " question's rare words rather than by the collection. `all` shows the"
        " statistics alone rank exactly as before (same nDCG@10); the budget trades"
        " nothing measurable in quality down to 500 postings (`TEXT_POSTINGS`), while"
        " 250 starts losing recall@100. The scale section shows what the bound is worth"
        " at 100k and 1M chunks. Not built, and why: BM25 as a pgvector `sparsevec` with"
        " an HNSW index ranks approximately, fixes the length normalisation (the mean"
        " length) into each chunk's stored weights when it is written, and adds a second"
        " graph of a million vectors to build and keep; an impact-ordered posting table"
        " (WAND-style top-k) stores a row per chunk and word, tens of times the chunks'"
        " rows, written by every chunk step. The GIN index and `tsv` column the product"
        " already keeps serve the candidates here.",
    ]
    write_section("text_arm", metrics, "\n".join(lines), details=results)


if __name__ == "__main__":
    main()
