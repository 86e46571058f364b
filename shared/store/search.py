"""The statements of a search: models in scope, routing's profiles, scope size, the arms.

Every statement is restricted by :func:`shared.store.scope.compile_scope`. The hybrid
statement runs both arms (HNSW cosine search and BM25 full text) in one round trip;
:func:`vector_search` runs its vector arm alone, the same SQL (benchmarks time it).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date

from shared.db import Database
from shared.db.connection import Session
from shared.store.scope import ScopeSql
from shared.store.vector_index import distance_sql, indexed_chunks_sql

# Upper bound on the tuples one iterative HNSW scan visits (pgvector's default is
# 20,000); past it a very selective filter returns fewer rows rather than scanning on.
MAX_SCAN_TUPLES = 50_000
# Okapi BM25 for the full-text arm (Robertson and Zaragoza, "The Probabilistic Relevance
# Framework: BM25 and Beyond", 2009), with Lucene's and Elasticsearch's default
# parameters: k1 saturates a term's repeated occurrences, b normalises by length.
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class ModelInScope:
    """An embedding model and the knowledge bases in scope that use it.

    ``chunks``: the readable chunks of those knowledge bases (their text statistics),
    before any document or metadata filter; ``indexed``: the chunks in the HNSW graph of
    that dimension, every knowledge base's (the server's estimate); None when not read.
    """

    name: str
    dimension: int
    kb_ids: list[str]
    chunks: int | None = None
    indexed: int | None = None


@dataclass(frozen=True)
class ProfileMatch:
    """A document in scope whose profile contains some of the names looked for."""

    id: str
    source_date: date | None
    matched: list[str]
    in_scope: int


@dataclass(frozen=True)
class DocumentFacts:
    """What a question's evidence is weighed against, for one document in scope.

    Attributes:
        id: The document.
        filename: Its file name.
        source_date: The date its file declares (else when it was received).
        period_end, period_months, fiscal_year_end_month: The reporting period its
            text states (None if none).
        matched: The names looked for that its profile contains.
        named: The question contains its file name (with or without extension) or title.
        chunks: Its active version's chunks.
        in_scope: Documents in scope.
        routing: The knowledge bases' routing: ``off`` if any has it off, else
            ``names`` if any has the name filter, else ``auto``.
    """

    id: str
    filename: str
    source_date: date | None
    period_end: date | None
    period_months: int | None
    fiscal_year_end_month: int | None
    matched: list[str]
    named: bool
    chunks: int
    in_scope: int
    routing: str


@dataclass(frozen=True)
class VectorHit:
    """A vector arm candidate: chunk id and full-precision cosine distance."""

    id: int
    distance: float


@dataclass(frozen=True)
class HybridRow:
    """A candidate of either arm of the hybrid statement, with what a passage shows.

    ``similarity`` is the cosine similarity to the query (None for a chunk embedded with
    another dimension); ``distance`` is set for vector hits, ``rank`` (BM25) for text hits.
    """

    id: int
    document_id: str
    version_id: str
    kb_id: str
    filename: str
    title: str | None
    text: str
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    heading_path: list[str] | None
    similarity: float | None
    distance: float | None
    rank: float | None


@dataclass(frozen=True)
class SearchPlan:
    """How one search walks its scope.

    Attributes:
        limit: Candidates each arm returns.
        exact: Compare the query with every chunk in scope (True) or walk the HNSW
            index (False).
        ef_search: ``hnsw.ef_search`` for the walk.
        postings: The full-text arm's candidate budget: it adds the question's words,
            rarest first, while the chunks containing them stay under this count
            (:func:`text_arm_sql`); None scores every chunk containing any word.
    """

    limit: int
    exact: bool
    ef_search: int
    postings: int | None = None


def models_in_scope(session: Session, scope: ScopeSql) -> list[ModelInScope]:
    """The embedding models of the knowledge bases in scope, each with its knowledge bases.

    Knowledge bases outside the caller's workspace are left out.
    """
    return session.records(
        ModelInScope,
        "SELECT k.embedding_model AS name, k.embedding_dim AS dimension,"
        " array_agg(k.id::text ORDER BY k.id) AS kb_ids,"
        " coalesce(sum((SELECT s.chunks FROM kb_text_stats s WHERE s.kb_id = k.id)), 0)::int"
        f" AS chunks, coalesce({indexed_chunks_sql('k.embedding_dim')}, 0)::int AS indexed"
        + scope.knowledge_bases()
        + " GROUP BY k.embedding_model, k.embedding_dim ORDER BY k.embedding_model",
        **scope.params,
    )


def profile_matches(session: Session, scope: ScopeSql, names: Sequence[str]) -> list[ProfileMatch]:
    """The documents in scope whose profile contains any of ``names``.

    None if a knowledge base in scope has routing ``off``. Only the documents some name
    matches come back, each with the number in scope (a knowledge base of thousands of
    documents returns a handful of rows).
    """
    return session.records(
        ProfileMatch,
        "SELECT id, source_date, matched, in_scope FROM (SELECT d.id::text AS id,"
        " v.source_date, ARRAY(SELECT t FROM unnest(CAST(:names AS text[])) AS t"
        "       WHERE v.profile @@ plainto_tsquery('english', t)) AS matched,"
        " count(*) OVER () AS in_scope"
        + scope.workspace_documents()
        + " AND NOT EXISTS (SELECT 1 FROM knowledge_bases o"
        "  WHERE o.id = ANY(CAST(:kbs AS uuid[])) AND o.routing = 'off')"
        ") s WHERE cardinality(matched) > 0",
        names=list(names),
        **scope.params,
    )


def document_facts(
    session: Session, scope: ScopeSql, names: Sequence[str], question: str, periods: bool
) -> list[DocumentFacts]:
    """The documents in scope a question's evidence can point at, with what it is weighed on.

    Only documents whose profile contains one of ``names``, whose file name or title
    the question contains, or (with ``periods``) that state a reporting period come
    back, each with the number of documents in scope: a topical knowledge base of
    thousands of documents returns the few whose profile has a name.
    """
    return session.records(
        DocumentFacts,
        "SELECT * FROM (SELECT d.id::text AS id, d.filename, v.source_date::date AS source_date,"
        " v.period_end, v.period_months, v.fiscal_year_end_month,"
        " ARRAY(SELECT t FROM unnest(CAST(:names AS text[])) AS t"
        "       WHERE v.profile @@ plainto_tsquery('english', t)) AS matched,"
        # Named by whole words, and only by a name long enough to mean one document:
        # "a.md" is not named by every question with an "a" in it.
        f" ({_named_in_question(_FILE_STEM, 4)}"
        f"  OR {_named_in_question('d.title', 8)}) AS named,"
        " coalesce(v.chunk_count, 0) AS chunks, count(*) OVER () AS in_scope,"
        " (SELECT CASE WHEN bool_or(o.routing = 'off') THEN 'off'"
        "  WHEN bool_or(o.routing = 'names') THEN 'names' ELSE 'auto' END"
        "  FROM knowledge_bases o WHERE o.id = ANY(CAST(:kbs AS uuid[]))) AS routing"
        + scope.workspace_documents()
        + ") s WHERE cardinality(matched) > 0 OR named"
        " OR (CAST(:periods AS boolean) AND period_end IS NOT NULL)",
        names=list(names),
        q=question,
        periods=periods,
        **scope.params,
    )


_FILE_STEM = "regexp_replace(d.filename, '[.][^.]*$', '')"


def _words(sql: str) -> str:
    """``sql`` lower-cased with every run of non-alphanumerics one space, space-padded."""
    return f"(' ' || btrim(regexp_replace(lower({sql}), '[^[:alnum:]]+', ' ', 'g')) || ' ')"


def _named_in_question(name_sql: str, shortest: int) -> str:
    """Whether the question (``:q``) contains the name ``name_sql`` as whole words."""
    return (
        f"(length({_words(name_sql)}) >= {shortest + 2}"
        f" AND position({_words(name_sql)} IN {_words(':q')}) > 0)"
    )


def scope_chunk_count(database: Database, scope: ScopeSql, cap: int) -> int:
    """The chunks of the active versions in scope, counted up to about ``cap``.

    Counts from ``chunk_count`` (set when a version is chunked; a missing count counts
    as ``cap``), reading at most ``cap`` documents, since each version has at least one
    chunk: the answer is exact up to ``cap`` and above it otherwise.
    """
    total = database.scalar(
        "SELECT coalesce(sum(coalesce(s.n, :cap)), 0) FROM (SELECT v.chunk_count AS n"
        + scope.active_versions("d")
        + " LIMIT :cap) s",
        cap=cap,
        **scope.params,
    )
    return int(total or 0)


def _distance(dim: int) -> str:
    """Full-precision cosine distance of ``chunks c`` to the query ``:q``."""
    return f"c.embedding::vector({dim}) <=> CAST(:q AS vector({dim}))"


def vector_arm_sql(scope: ScopeSql, dim: int, exact: bool) -> str:
    """The vector arm: the ``:n`` chunks in scope nearest the query ``:q`` (a CTE body).

    Scores use the full-precision vectors; the HNSW walk repeats the partial index's
    expression and predicate (``distance_sql``: ``embedding::halfvec(N)``,
    ``embedding_dim = N``) so the planner can use the index. An exact search orders by
    ``cosine_distance()``, a function no index serves. The walk picks the candidates by
    the index's (half-precision) order; they are ranked by their full-precision
    distance (near-ties can swap in half precision).
    """
    if exact:
        # Ordered by the distance it returns: one comparison per chunk, not two.
        return (
            f"SELECT c.id, cosine_distance(c.embedding::vector({dim}),"
            f" CAST(:q AS vector({dim}))) AS distance FROM chunks c {scope.chunks()}"
            f" AND c.embedding_dim = {dim} ORDER BY distance LIMIT :n"
        )
    return (
        f"SELECT c.id, {_distance(dim)} AS distance FROM chunks c {scope.chunks()}"
        f" AND c.embedding_dim = {dim} ORDER BY {distance_sql(dim)} LIMIT :n"
    )


def text_arm_sql(scope: ScopeSql) -> str:
    """The full-text arm: the ``:n`` chunks in scope best matching ``:terms`` by BM25.

    ts_rank_cd counts every matching word alike, so a question's common words
    ("patients", "cells", "increase") outweigh the one rare word that identifies the
    passage; BM25 weighs each word by its inverse document frequency and saturates
    repeats.

    Statistics come from the knowledge bases' counts (``kb_terms``, ``kb_text_stats``,
    migration 0019: the readable chunks, kept by a trigger when an active version
    changes): N, the mean length in the embedding model's tokens, and each word's
    document frequency, one index lookup per word. Candidates are generated rarest word
    first: the chunks in scope (GIN index) containing the question's rarest words, adding
    words while the chunks they occur in stay within ``:budget`` postings. A chunk
    holding none of those words holds only common ones, which BM25 weighs least; so the
    arm never reads the thousands of chunks that contain a common word alone. When even
    the rarest word is in more chunks than the budget, the candidates are the chunks
    holding two of the three rarest words; and at most the budget of chunks is read.
    Each candidate is scored with every word of the question (its frequency in the chunk
    from the positions the tsvector stores).
    """
    return (
        "WITH known AS MATERIALIZED (SELECT t.lexeme, sum(t.df)::float8 AS df FROM kb_terms t"
        " WHERE t.kb_id = ANY(CAST(:kbs AS uuid[]))"
        " AND t.lexeme = ANY(tsvector_to_array(to_tsvector('english', :terms)))"
        " GROUP BY t.lexeme HAVING sum(t.df) > 0),"
        " stats AS MATERIALIZED (SELECT greatest(sum(s.chunks), 1)::float8 AS n,"
        " coalesce(sum(s.tokens)::float8 / nullif(sum(s.counted_chunks), 0), 1) AS avgdl"
        " FROM kb_text_stats s WHERE s.kb_id = ANY(CAST(:kbs AS uuid[]))),"
        " weights AS MATERIALIZED (SELECT k.lexeme, k.df,"
        " ln(1 + (s.n - k.df + 0.5) / (k.df + 0.5)) AS idf,"
        " sum(k.df) OVER (ORDER BY k.df, k.lexeme) - k.df AS rarer"
        " FROM known k CROSS JOIN stats s),"
        " rarest AS (SELECT lexeme, row_number() OVER (ORDER BY df, lexeme) AS r FROM weights),"
        " chosen AS MATERIALIZED (SELECT CASE WHEN min(w.df) <= CAST(:budget AS float8)"
        " THEN string_agg(quote_literal(w.lexeme), ' | ')"
        " FILTER (WHERE w.rarer + w.df <= CAST(:budget AS float8))"
        " ELSE coalesce((SELECT string_agg(quote_literal(a.lexeme) || ' & '"
        " || quote_literal(b.lexeme), ' | ') FROM rarest a JOIN rarest b"
        " ON a.r < b.r AND b.r <= 3), min(w.lexeme)) END::tsquery AS q,"
        " array_agg(w.lexeme) AS every FROM weights w),"
        " matched AS MATERIALIZED (SELECT m.id, m.dl, u.lexeme,"
        " cardinality(u.positions) AS tf FROM (SELECT c.id,"
        " greatest(c.token_count, 1)::float8 AS dl, ts_filter(setweight(c.tsv, 'A',"
        " (SELECT every FROM chosen)), '{a}') AS hits"
        f" FROM chunks c {scope.chunks()} AND c.tsv @@ (SELECT q FROM chosen)"
        " LIMIT least(CAST(:budget AS float8), 1e18)::bigint) m,"
        " unnest(m.hits) AS u)"
        " SELECT t.id, sum(w.idf"
        f" * t.tf * {BM25_K1 + 1} / (t.tf + {BM25_K1} * (1 - {BM25_B}"
        f" + {BM25_B} * t.dl / s.avgdl)))::real AS rank"
        " FROM matched t JOIN weights w USING (lexeme) CROSS JOIN stats s"
        " GROUP BY t.id ORDER BY rank DESC, t.id LIMIT :n"
    )


def plan_settings(plan: SearchPlan) -> dict[str, str | int]:
    """The per-transaction settings of a search (``SET LOCAL``, sent with its ``BEGIN``).

    Iterative scans keep walking the HNSW graph until LIMIT rows pass the scope
    filters (relaxed order: results are re-sorted by distance). The planner cannot be
    left to choose between the index and an exact scan: the scope's joins make it
    expect a handful of rows, so it sorts every chunk of the knowledge base by distance
    (100k chunks: hundreds of ms); sorting is disabled unless the search is exact, so
    the index's order wins.
    """
    return {
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.ef_search": plan.ef_search,
        "hnsw.max_scan_tuples": MAX_SCAN_TUPLES,
        "enable_sort": "on" if plan.exact else "off",
    }


def _searching(database: Database, plan: SearchPlan) -> AbstractContextManager[Session]:
    """A read-only transaction with the plan's settings: one round trip to begin it."""
    return database.transaction(read_only=True, settings=plan_settings(plan))


@dataclass(frozen=True)
class HybridQuery:
    """One search of one embedding model's knowledge bases, ready to run.

    Attributes:
        scope: The compiled scope.
        vector: The query vector as pgvector text (``vector_literal``).
        dim: The embedding dimension of the knowledge bases in scope.
        plan: Limit, exact or index, ef_search.
        tsquery: The OR full-text query (plain words joined by ``|``); empty skips the
            full-text arm.
        terms: The query's words, space separated (their positions weigh BM25's tf).
    """

    scope: ScopeSql
    vector: str
    dim: int
    plan: SearchPlan
    tsquery: str
    terms: str

    def sql(self) -> str:
        """The hybrid statement: both arms' candidates with what a passage shows."""
        dim = self.dim
        text_arm = (
            text_arm_sql(self.scope)
            if self.tsquery
            else "SELECT NULL::bigint AS id, NULL::real AS rank WHERE false"
        )
        return (
            f"WITH vec AS MATERIALIZED ({vector_arm_sql(self.scope, dim, self.plan.exact)}),"
            f" fts AS MATERIALIZED ({text_arm}),"
            " candidates AS (SELECT id FROM vec UNION SELECT id FROM fts)"
            " SELECT c.id, c.document_id::text AS document_id,"
            " c.version_id::text AS version_id, c.kb_id::text AS kb_id, d.filename, d.title,"
            " c.text, c.page_start, c.page_end, c.char_start, c.char_end,"
            # As JSON: pg8000 parses text[] in Python (3 ms for 70 rows), JSON in C.
            " array_to_json(c.heading_path) AS heading_path,"
            f" CASE WHEN c.embedding_dim = {dim} THEN 1 - ({_distance(dim)}) END AS similarity,"
            " vec.distance, fts.rank"
            " FROM candidates JOIN chunks c ON c.id = candidates.id"
            " JOIN documents d ON d.id = c.document_id"
            " LEFT JOIN vec ON vec.id = c.id LEFT JOIN fts ON fts.id = c.id"
        )

    def params(self) -> dict[str, object]:
        """The statement's parameters."""
        return {
            "q": self.vector,
            "tsq": self.tsquery,
            "terms": self.terms,
            "n": self.plan.limit,
            "budget": float("inf") if self.plan.postings is None else float(self.plan.postings),
            **self.scope.params,
        }


def vector_search(
    database: Database, scope: ScopeSql, query: str, dim: int, plan: SearchPlan
) -> list[VectorHit]:
    """The vector arm alone, as the hybrid statement runs it: nearest first.

    Args:
        database: The database.
        scope: The compiled scope.
        query: The query vector as pgvector text (``vector_literal``).
        dim: The embedding dimension of the knowledge bases in scope.
        plan: Limit, exact or index, ef_search.
    """
    with _searching(database, plan) as session:
        hits = session.records(
            VectorHit,
            f"WITH vec AS MATERIALIZED ({vector_arm_sql(scope, dim, plan.exact)})"
            " SELECT id, distance FROM vec",
            q=query,
            n=plan.limit,
            **scope.params,
        )
    return sorted(hits, key=lambda hit: (hit.distance, hit.id))


def hybrid_search(database: Database, query: HybridQuery) -> list[HybridRow]:
    """Both arms for the knowledge bases of one embedding model, in one statement.

    Returns:
        The union of both arms' candidates, in no particular order.
    """
    with _searching(database, query.plan) as session:
        return session.records(HybridRow, query.sql(), **query.params())


def explain_hybrid_search(database: Database, query: HybridQuery) -> str:
    """The executed plan of :func:`hybrid_search` for ``query`` (``EXPLAIN ANALYZE``).

    For diagnosing a slow search: the same statement and settings, run and timed.
    """
    with _searching(database, query.plan) as session:
        return "\n".join(
            str(line)
            for line in session.scalars(
                "EXPLAIN (ANALYZE, BUFFERS OFF) " + query.sql(), **query.params()
            )
        )
