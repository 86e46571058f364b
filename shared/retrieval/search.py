"""Hybrid retrieval: HNSW cosine search and full-text search in one query, fused by RRF.

Every answering path (ask, stream, retrieve, regenerate) calls :func:`retrieve`. The
scope (knowledge bases, the caller's workspace, document and metadata filters) and the
rule that only active versions are visible are predicates of the SQL itself, applied
while the index is scanned, never to a result list afterwards: pgvector's iterative
index scans (0.8+) keep scanning the HNSW graph until enough rows pass the filters, so
a filter matching 1% of the chunks still yields ``top_k`` passages.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.db import Database
from shared.db.connection import Session, vector_literal
from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.query import named_terms, or_query_terms, wants_latest
from shared.retrieval.types import Passage
from shared.store.vector_index import distance_sql

log = logging.getLogger(__name__)

# Candidates each arm contributes before fusion, relative to top_k: fusion can only
# reorder what the arms found, so they look deeper than the answer needs.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 40
# Upper bound on the tuples one iterative HNSW scan visits (pgvector's default is
# 20,000); past it a very selective filter returns fewer rows rather than scanning on.
MAX_SCAN_TUPLES = 50_000
# A scope of at most this many chunks (a selective document or metadata filter) is
# searched exactly: comparing the query with each of its chunks is faster than walking
# the graph past the many chunks the filter rejects, and finds the true nearest ones.
# Measured at 100k chunks (docs/benchmarks.md, "Retrieval latency and recall"): exact
# was faster up to 4,000 chunks in scope, the index from 8,000.
EXACT_SEARCH_MAX_CHUNKS = 4_000
# Candidates the HNSW walk keeps (hnsw.ef_search), at least: at 100k MiniLM chunks, 40
# gave recall@10 0.96 with some questions finding none of their true top 10; 100 gives
# 0.99 for about 2 ms more (docs/benchmarks.md).
EF_SEARCH_MIN = 100
# A name routes a search only if at most this share of the documents in scope carry it
# in their profile: a word every document's title page has ("Form", "Inc") says nothing.
ROUTING_MAX_SHARE = 0.5
# Okapi BM25 for the full-text arm (Robertson and Zaragoza, "The Probabilistic Relevance
# Framework: BM25 and Beyond", 2009), with Lucene's and Elasticsearch's default
# parameters: k1 saturates a term's repeated occurrences, b normalises by length.
BM25_K1 = 1.2
BM25_B = 0.75

_FTS_TERM = re.compile(r"[a-z0-9]{2,}")


@dataclass(frozen=True)
class RetrievalRequest:
    """What to search for and where.

    Attributes:
        query: The (standalone) question.
        kb_ids: Knowledge bases the caller may read and asked for.
        workspace: The caller's workspace (name); knowledge bases outside it are
            invisible even if their ids are given.
        top_k: Passages to return.
        document_ids: Only these documents, if given.
        metadata: Only documents whose metadata contains these key/values (JSON
            containment), if given.
        min_similarity: Drop passages whose cosine similarity to the query is lower.
        route: Route questions that name something to the documents about it, and
            "latest" questions to the newest of those (see :func:`route_documents`).
    """

    query: str
    kb_ids: Sequence[str]
    workspace: str
    top_k: int = 8
    document_ids: Sequence[str] | None = None
    metadata: Mapping[str, Any] | None = None
    min_similarity: float | None = None
    route: bool = True


@dataclass
class Retrieval:
    """Passages best first, and how the search was narrowed (for logs and responses)."""

    passages: list[Passage]
    routed_to: list[str] | None = None
    names: list[str] = field(default_factory=list)
    latest: bool = False


@dataclass(frozen=True)
class _Model:
    name: str
    dimension: int
    kb_ids: tuple[str, ...]


def retrieve(database: Database, request: RetrievalRequest) -> Retrieval:
    """Return the ``top_k`` passages best matching the query inside the request's scope."""
    with database.session() as session:
        models = _models_in_scope(session, request.kb_ids, request.workspace)
        if not models:
            return Retrieval(passages=[])
        routed, names, latest = (
            route_documents(session, request) if request.route else (None, [], False)
        )
    document_ids = request.document_ids
    if routed is not None:
        document_ids = (
            routed if document_ids is None else [d for d in routed if d in set(document_ids)]
        ) or document_ids
    rankings: list[list[int]] = []
    rows: dict[int, tuple[Any, ...]] = {}
    similarity: dict[int, float | None] = {}
    for model in models:
        vector_ranking, text_ranking, found = _search_model(database, request, model, document_ids)
        rankings.extend([vector_ranking, text_ranking])
        for row in found:
            rows[row[0]] = row
            similarity[row[0]] = row[12]
    fused = reciprocal_rank_fusion(rankings)
    passages: list[Passage] = []
    for chunk_id, score in fused:
        row = rows[chunk_id]
        cosine = similarity[chunk_id]
        if request.min_similarity is not None and (
            cosine is None or cosine < request.min_similarity
        ):
            continue
        passages.append(_passage(row, score))
        if len(passages) == request.top_k:
            break
    return Retrieval(
        passages=passages,
        routed_to=list(document_ids) if routed is not None and document_ids else None,
        names=names,
        latest=latest,
    )


def _models_in_scope(session: Session, kb_ids: Sequence[str], workspace: str) -> list[_Model]:
    rows = session.run(
        "SELECT k.embedding_model, k.embedding_dim, array_agg(k.id::text ORDER BY k.id)"
        " FROM knowledge_bases k JOIN workspaces w ON w.id = k.workspace_id"
        " WHERE k.id = ANY(CAST(:kbs AS uuid[])) AND w.name = :ws"
        " GROUP BY k.embedding_model, k.embedding_dim ORDER BY k.embedding_model",
        kbs=list(kb_ids),
        ws=workspace,
    )
    return [_Model(name=row[0], dimension=int(row[1]), kb_ids=tuple(row[2])) for row in rows]


def route_documents(
    session: Session, request: RetrievalRequest
) -> tuple[list[str] | None, list[str], bool]:
    """Narrow the search to the documents a question is about, when it says so.

    A question naming a company, product or person ("Apple's net sales") is routed to
    the documents whose profile (file name, title and opening text, where documents
    name their subject) contains that name, unless most documents do, and unless a
    knowledge base searched has routing ``off`` (a topical collection, where names are
    topics that full text finds without a filter). A question asking
    for the "latest" or "most recent" keeps, for each name, only its newest document by
    the date the file declares (else when it was received). Names that no profile
    contains route nothing, so an unknown name never hides every document.

    Returns:
        The routed document ids (None: not routed), the names found, the latest flag.
    """
    names = named_terms(request.query)
    latest = wants_latest(request.query)
    if not names:
        return None, names, latest
    # Only the documents some name matches come back, each with the number in scope
    # (a knowledge base of thousands of documents returns a handful of rows).
    rows = session.run(
        "SELECT id, source_date, matched, in_scope FROM (SELECT d.id::text AS id,"
        " v.source_date, ARRAY(SELECT t FROM unnest(CAST(:names AS text[])) AS t"
        "       WHERE v.profile @@ plainto_tsquery('english', t)) AS matched,"
        " count(*) OVER () AS in_scope"
        " FROM documents d JOIN document_versions v ON v.id = d.active_version_id"
        " JOIN knowledge_bases k ON k.id = d.kb_id JOIN workspaces w ON w.id = k.workspace_id"
        " WHERE d.kb_id = ANY(CAST(:kbs AS uuid[])) AND w.name = :ws"
        " AND NOT EXISTS (SELECT 1 FROM knowledge_bases o"
        "  WHERE o.id = ANY(CAST(:kbs AS uuid[])) AND o.routing = 'off')"
        + (" AND d.id = ANY(CAST(:docs AS uuid[]))" if request.document_ids is not None else "")
        + (" AND d.metadata @> CAST(:meta AS jsonb)" if request.metadata else "")
        + ") s WHERE cardinality(matched) > 0",
        names=names,
        kbs=list(request.kb_ids),
        ws=request.workspace,
        **_filter_params(request.document_ids, request.metadata),
    )
    in_scope = int(rows[0][3]) if rows else 0
    if in_scope < 2:
        return None, names, latest
    by_name: dict[str, list[tuple[str, Any]]] = {}
    for document_id, source_date, matched, _ in rows:
        for name in matched or []:
            by_name.setdefault(name, []).append((document_id, source_date))
    routed: dict[str, None] = {}
    for documents in by_name.values():
        if len(documents) > ROUTING_MAX_SHARE * in_scope:
            continue
        if latest:
            newest = (
                max(date for _, date in documents if date is not None)
                if any(date is not None for _, date in documents)
                else None
            )
            documents = [(d, date) for d, date in documents if date == newest] or documents
        for document_id, _ in documents:
            routed.setdefault(document_id, None)
    return (list(routed) or None), names, latest


def _filter_params(
    document_ids: Sequence[str] | None, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if document_ids is not None:
        params["docs"] = list(document_ids)
    if metadata:
        params["meta"] = json.dumps(dict(metadata))
    return params


def _search_model(
    database: Database,
    request: RetrievalRequest,
    model: _Model,
    document_ids: Sequence[str] | None,
) -> tuple[list[int], list[int], list[tuple[Any, ...]]]:
    """Both arms for the knowledge bases of one embedding model, in one statement."""
    from shared.embeddings import get_embedder

    dim = model.dimension
    vector = vector_literal(get_embedder(model.name, dim).embed([request.query])[0])
    limit = max(request.top_k * CANDIDATE_FACTOR, MIN_CANDIDATES)
    terms = [t for t in (_FTS_TERM.findall(" ".join(or_query_terms(request.query))))]
    tsquery = " | ".join(dict.fromkeys(terms))
    scope = scope_sql(document_ids, request.metadata)
    # Scores use the full-precision vectors; the HNSW walk (ranked, below) repeats the
    # partial index's expression and predicate (distance_sql: embedding::halfvec(N),
    # embedding_dim = N) so the planner can use the index.
    distance = f"c.embedding::vector({dim}) <=> CAST(:q AS vector({dim}))"
    # The planner cannot be left to choose between the index and an exact scan: the
    # scope's joins make it expect a handful of rows, so it sorts every chunk of the
    # knowledge base by distance (100k chunks: hundreds of ms). The scope's size,
    # read from its versions' chunk counts, decides instead: a small scope is compared
    # exactly (cosine_distance(), a function no index serves), anything larger walks
    # the HNSW index (sorting is disabled for the statement, so the index's order wins).
    exact = _small_scope(database, model, request, document_ids)
    ranked = (
        f"cosine_distance(c.embedding::vector({dim}), CAST(:q AS vector({dim})))"
        if exact
        else distance_sql(dim)
    )
    # Full text: chunks matching any of the question's words (GIN index), ranked by
    # BM25. ts_rank_cd counts every matching word alike, so a question's common words
    # ("patients", "cells", "increase") outweigh the one rare word that identifies the
    # passage; BM25 weighs each word by its inverse document frequency and saturates
    # repeats. Statistics are over the search's scope: N and the mean length (in the
    # embedding model's tokens) from its active versions' chunk counts and token totals
    # (a scan of every chunk in scope cost milliseconds per 10k chunks), each word's
    # document frequency from the matching chunks (every chunk containing the word
    # matches the OR query), its frequency in a chunk from the positions the tsvector
    # stores.
    versions = (
        " FROM documents f JOIN document_versions v ON v.id = f.active_version_id"
        " WHERE f.kb_id = ANY(CAST(:kbs AS uuid[]))"
        + (" AND f.id = ANY(CAST(:docs AS uuid[]))" if document_ids is not None else "")
        + (" AND f.metadata @> CAST(:meta AS jsonb)" if request.metadata else "")
    )
    text_arm = (
        "WITH matched AS MATERIALIZED (SELECT m.id, m.dl, u.lexeme,"
        " cardinality(u.positions) AS tf FROM (SELECT c.id,"
        " greatest(c.token_count, 1)::float8 AS dl, ts_filter(setweight(c.tsv, 'A',"
        " tsvector_to_array(to_tsvector('english', :terms))), '{a}') AS hits"
        f" FROM chunks c {scope} AND c.tsv @@ to_tsquery('english', :tsq)) m,"
        " unnest(m.hits) AS u),"
        " df AS (SELECT lexeme, count(*)::float8 AS df FROM matched GROUP BY lexeme),"
        # Versions without a token total (none after migration 0007) are left out of
        # the mean length rather than counted as empty: avgdl is never zero.
        " stats AS (SELECT greatest(sum(v.chunk_count), 1)::float8 AS n,"
        " coalesce(sum(v.token_total)::float8 / nullif(sum(v.chunk_count)"
        f" FILTER (WHERE v.token_total IS NOT NULL), 0), 1) AS avgdl {versions})"
        " SELECT t.id, sum(ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5))"
        f" * t.tf * {BM25_K1 + 1} / (t.tf + {BM25_K1} * (1 - {BM25_B}"
        f" + {BM25_B} * t.dl / s.avgdl)))::real AS rank"
        " FROM matched t JOIN df d USING (lexeme) CROSS JOIN stats s"
        " GROUP BY t.id ORDER BY rank DESC, t.id LIMIT :n"
        if tsquery
        else "SELECT NULL::bigint AS id, NULL::real AS rank WHERE false"
    )
    sql = (
        # The walk picks the candidates by the index's (half-precision) order; they are
        # ranked by their full-precision distance (near-ties can swap in half precision).
        f"WITH vec AS MATERIALIZED (SELECT c.id, {distance} AS distance FROM chunks c {scope}"
        f" AND c.embedding_dim = {dim} ORDER BY {ranked} LIMIT :n),"
        f" fts AS MATERIALIZED ({text_arm}),"
        " candidates AS (SELECT id FROM vec UNION SELECT id FROM fts)"
        " SELECT c.id, c.document_id::text, c.version_id::text, c.kb_id::text, d.filename,"
        " d.title, c.text, c.page_start, c.page_end, c.char_start, c.char_end,"
        # As JSON: pg8000 parses text[] in Python (3 ms for 70 rows), JSON in C.
        " array_to_json(c.heading_path),"
        f" CASE WHEN c.embedding_dim = {dim} THEN 1 - ({distance}) END,"
        " vec.distance, fts.rank"
        " FROM candidates JOIN chunks c ON c.id = candidates.id"
        " JOIN documents d ON d.id = c.document_id"
        " LEFT JOIN vec ON vec.id = c.id LEFT JOIN fts ON fts.id = c.id"
    )
    with database.transaction() as session:
        # Iterative scans: keep walking the HNSW graph until LIMIT rows pass the scope
        # filters (relaxed order: results are re-sorted by distance below).
        # One round trip for the three settings (a simple query may hold several).
        session.run(
            "SET LOCAL hnsw.iterative_scan = relaxed_order;"
            f" SET LOCAL hnsw.ef_search = {min(max(limit, EF_SEARCH_MIN), 1000)};"
            f" SET LOCAL hnsw.max_scan_tuples = {MAX_SCAN_TUPLES};"
            f" SET LOCAL enable_sort = {'on' if exact else 'off'}"
        )
        found = session.run(
            sql,
            q=vector,
            tsq=tsquery,
            terms=" ".join(dict.fromkeys(terms)),
            n=limit,
            kbs=list(model.kb_ids),
            ws=request.workspace,
            **_filter_params(document_ids, request.metadata),
        )
    vector_hits = [row for row in found if row[13] is not None]
    text_hits = [row for row in found if row[14] is not None]
    vector_ranking = [row[0] for row in sorted(vector_hits, key=lambda r: (r[13], r[0]))]
    text_ranking = [row[0] for row in sorted(text_hits, key=lambda r: (-r[14], r[0]))]
    return vector_ranking, text_ranking, found


def scope_sql(document_ids: Sequence[str] | None, metadata: Mapping[str, Any] | None) -> str:
    """The ``WHERE`` clause both arms apply to ``chunks c`` (parameters ``:kbs``, ``:ws``,
    ``:docs`` with ``document_ids``, ``:meta`` with ``metadata``).

    Active versions of documents in the knowledge bases asked for, inside the caller's
    workspace. Written so the planner's row estimates stay right (a join on the active
    version, or a per-row workspace check, made it expect a few rows out of 100k, and
    so scan them all): visibility is a semi-join on the active versions, and the
    workspace check runs once for the statement (every knowledge base asked for must be
    the caller's). Document and metadata filters name the active versions, so a
    selective filter reaches its chunks through the (version_id, ordinal) index.
    """
    scope = (
        " WHERE c.kb_id = ANY(CAST(:kbs AS uuid[]))"
        " AND c.version_id IN (SELECT d.active_version_id FROM documents d"
        " WHERE d.kb_id = ANY(CAST(:kbs AS uuid[])))"
        " AND (SELECT count(*) FROM knowledge_bases k JOIN workspaces w"
        " ON w.id = k.workspace_id WHERE w.name = :ws AND k.id = ANY(CAST(:kbs AS uuid[])))"
        " = cardinality(CAST(:kbs AS uuid[]))"
    )
    if document_ids is not None:
        scope += (
            " AND c.version_id IN (SELECT f.active_version_id FROM documents f"
            " WHERE f.id = ANY(CAST(:docs AS uuid[])))"
        )
    if metadata:
        scope += (
            " AND c.version_id IN (SELECT f.active_version_id FROM documents f"
            " WHERE f.kb_id = ANY(CAST(:kbs AS uuid[])) AND f.metadata @> CAST(:meta AS jsonb))"
        )
    return scope


def _small_scope(
    database: Database,
    model: _Model,
    request: RetrievalRequest,
    document_ids: Sequence[str] | None,
) -> bool:
    """Whether at most :data:`EXACT_SEARCH_MAX_CHUNKS` chunks are in the search's scope.

    Counts the chunks of the active versions in scope from ``chunk_count`` (set when a
    version is chunked; a missing count counts as many), reading at most one more
    document than the limit allows, since each version has at least one chunk.
    """
    cap = EXACT_SEARCH_MAX_CHUNKS + 1
    sql = (
        "SELECT coalesce(sum(coalesce(s.n, :cap)), 0) FROM (SELECT v.chunk_count AS n"
        " FROM documents d JOIN document_versions v ON v.id = d.active_version_id"
        " WHERE d.kb_id = ANY(CAST(:kbs AS uuid[]))"
        + (" AND d.id = ANY(CAST(:docs AS uuid[]))" if document_ids is not None else "")
        + (" AND d.metadata @> CAST(:meta AS jsonb)" if request.metadata else "")
        + " LIMIT :cap) s"
    )
    total = database.scalar(
        sql,
        kbs=list(model.kb_ids),
        cap=cap,
        **_filter_params(document_ids, request.metadata),
    )
    return int(total or 0) <= EXACT_SEARCH_MAX_CHUNKS


def _passage(row: tuple[Any, ...], score: float) -> Passage:
    return Passage(
        chunk_id=int(row[0]),
        document_id=row[1],
        version_id=row[2],
        kb_id=row[3],
        filename=row[4],
        title=row[5],
        text=row[6],
        page_start=row[7],
        page_end=row[8],
        char_start=row[9],
        char_end=row[10],
        heading_path=tuple(row[11] or ()),
        score=round(score, 6),
        vector_score=None if row[12] is None else round(float(row[12]), 6),
        text_score=None if row[14] is None else round(float(row[14]), 6),
    )
