"""Hybrid retrieval: HNSW cosine search and full-text search in one query, fused by RRF.

Every answering path (ask, stream, retrieve, regenerate) calls :func:`retrieve`. The
scope (knowledge bases, the caller's workspace, document and metadata filters) and the
rule that only active versions are visible are predicates of the SQL itself, applied
while the index is scanned, never to a result list afterwards: pgvector's iterative
index scans (0.8+) keep scanning the HNSW graph until enough rows pass the filters, so
a filter matching 1% of the chunks still yields ``top_k`` passages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from shared.db import Database
from shared.db.connection import Session, vector_literal
from shared.retrieval.evidence import Evidence, weigh
from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.query import named_terms, or_query_terms, wants_latest
from shared.retrieval.types import Passage
from shared.store import search as store
from shared.store import vector_index
from shared.store.scope import Scope, ScopeSql, compile_scope
from shared.store.search import HybridQuery, HybridRow, ModelInScope, SearchPlan
from shared.tracing import span

log = logging.getLogger(__name__)

# Candidates each arm contributes before fusion, relative to top_k: fusion can only
# reorder what the arms found, so they look deeper than the answer needs.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 40
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
# A larger graph needs a longer walk for the same recall: ef_search grows by one
# candidate per this many chunks in the HNSW graph (the whole index of the dimension,
# which every walk crosses), from EF_SEARCH_MIN up to EF_SEARCH_MAX, pgvector's limit.
# At 1M recombined SciFact chunks ef_search 100 found 0.89 of the true top 10
# (docs/benchmarks.md, "Scale").
EF_SEARCH_CHUNKS_PER_CANDIDATE = 1_000
EF_SEARCH_MAX = 1_000
# The full-text arm's candidates: chunks containing the question's rarest words, adding
# words rarest first while the chunks containing them stay within this many (counted
# over the knowledge bases); a small filtered scope scores every chunk containing any
# word. On SciFact 500 kept full-text nDCG@10 (0.688, 0.684 scoring every match) at a
# fraction of the chunks read (docs/benchmarks.md, "Full-text arm").
TEXT_POSTINGS = 500
# A name routes a search only if at most this share of the documents in scope carry it
# in their profile: a word every document's title page has ("Form", "Inc") says nothing.
ROUTING_MAX_SHARE = 0.5

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
        metadata: Only documents whose metadata passes this filter (``shared.filters``:
            bare values contained, operator objects compared), if given.
        min_similarity: Drop passages whose cosine similarity to the query is lower.
        route: Weigh what the question names (subjects, periods, file names) as
            evidence about its documents (see :mod:`shared.retrieval.evidence`); with
            routing ``names`` the earlier hard name filter (:func:`route_documents`).
        reader: The caller's principal id.
        granted_only: The caller reads only knowledge bases granted to them (see
            :class:`shared.store.scope.Scope`).
    """

    query: str
    kb_ids: Sequence[str]
    workspace: str
    top_k: int = 8
    document_ids: Sequence[str] | None = None
    metadata: Mapping[str, Any] | None = None
    min_similarity: float | None = None
    route: bool = True
    reader: str | None = None
    granted_only: bool = False


@dataclass
class Retrieval:
    """Passages best first, and how the search was narrowed (for logs and responses)."""

    passages: list[Passage]
    routed_to: list[str] | None = None
    names: list[str] = field(default_factory=list)
    latest: bool = False
    arms: list[ArmRankings] = field(default_factory=list)
    evidence: Evidence | None = None
    reranked: bool = False


@dataclass(frozen=True)
class ArmRankings:
    """What the two arms found for one embedding model, before fusion.

    Attributes:
        vector: Chunk ids of the vector arm, nearest first.
        text: Chunk ids of the full-text arm, best BM25 first.
        rows: Every candidate of either arm, with what a passage shows.
    """

    vector: list[int]
    text: list[int]
    rows: list[HybridRow]


def request_scope(request: RetrievalRequest, document_ids: Sequence[str] | None = None) -> Scope:
    """The scope a request searches (``document_ids`` in place of the request's, if given)."""
    return Scope(
        kb_ids=tuple(request.kb_ids),
        workspace=request.workspace,
        document_ids=request.document_ids if document_ids is None else document_ids,
        metadata=request.metadata,
        reader=request.reader,
        granted_only=request.granted_only,
    )


def retrieve(database: Database, request: RetrievalRequest) -> Retrieval:
    """Return the ``top_k`` passages best matching the query inside the request's scope.

    Args:
        database: The database.
        request: The query, its scope and how many passages to return.
    """
    with span("ragline.retrieval", top_k=request.top_k) as current:
        retrieval = _retrieve(database, request)
        current.set_attribute("ragline.passages", len(retrieval.passages))
        return retrieval


def _retrieve(database: Database, request: RetrievalRequest) -> Retrieval:
    with database.session() as session:
        with span("ragline.retrieval.scope") as scope_span:
            models = store.models_in_scope(session, compile_scope(request_scope(request)))
            scope_span.set_attribute("ragline.models", len(models))
        if not models:
            return Retrieval(passages=[])
        routed: list[str] | None = None
        names: list[str] = []
        latest = False
        evidence: Evidence | None = None
        if request.route:
            with span("ragline.retrieval.routing") as routing_span:
                evidence = weigh(session, compile_scope(request_scope(request)), request.query)
                names = evidence.names
                latest = evidence.order is not None and evidence.order.value == "latest"
                if evidence.routing == "names":
                    routed, names, latest = route_documents(session, request)
                else:
                    routed = evidence.narrow_to
                routing_span.set_attribute("ragline.routed", len(routed or ()))
    document_ids = _within(routed, request.document_ids)
    size = _known_size(request, models, document_ids, evidence)
    rankings: list[list[int]] = []
    rows: dict[int, HybridRow] = {}
    arms: list[ArmRankings] = []
    for model in models:
        arm = search_model(database, request, model, document_ids, size.get(model.name))
        arms.append(arm)
        rankings.extend([arm.vector, arm.text])
        for row in arm.rows:
            rows[row.id] = row
    prefer = evidence.prefer if evidence is not None else None
    preferred = _within(prefer, request.document_ids) if prefer else None
    if routed is None and preferred:
        # The preferred documents' own best passages, as two more rankings: their
        # passages rise in the fused order, nothing else is hidden.
        for model in models:
            arm = search_model(database, request, model, preferred)
            rankings.extend([arm.vector, arm.text])
            for row in arm.rows:
                rows.setdefault(row.id, row)
    fused = reciprocal_rank_fusion(rankings)
    passages: list[Passage] = []
    for chunk_id, score in fused:
        row = rows[chunk_id]
        cosine = row.similarity
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
        arms=arms,
        evidence=evidence,
    )


def _known_size(
    request: RetrievalRequest,
    models: Sequence[ModelInScope],
    document_ids: Sequence[str] | None,
    evidence: Evidence | None,
) -> dict[str, int]:
    """The chunks each model's search will read, where what was already read tells it.

    A whole knowledge base's count comes with its model (its text statistics), a search
    narrowed to documents the evidence weighed from their counts; a metadata filter or
    a request's own document list is counted by the plan instead.
    """
    if request.metadata:
        return {}
    if document_ids is None:
        return {m.name: m.chunks for m in models if m.chunks is not None}
    if request.document_ids is None and evidence is not None and len(models) == 1:
        known = [evidence.chunks.get(d) for d in document_ids]
        if all(count is not None for count in known):
            return {models[0].name: sum(count or 0 for count in known)}
    return {}


def _within(chosen: Sequence[str] | None, allowed: Sequence[str] | None) -> Sequence[str] | None:
    """``chosen`` documents kept within the request's own ``allowed`` ones.

    None (search everything allowed) when nothing was chosen or none of it is allowed.
    """
    if chosen is None:
        return allowed
    if allowed is None:
        return list(chosen)
    kept = [d for d in chosen if d in set(allowed)]
    return kept or allowed


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

    Args:
        session: A database session.
        request: The question and its scope.

    Returns:
        The routed document ids (None: not routed), the names found, the latest flag.
    """
    names = named_terms(request.query)
    latest = wants_latest(request.query)
    if not names:
        return None, names, latest
    matches = store.profile_matches(session, compile_scope(request_scope(request)), names)
    in_scope = int(matches[0].in_scope) if matches else 0
    if in_scope < 2:
        return None, names, latest
    by_name: dict[str, list[tuple[str, date | None]]] = {}
    for match in matches:
        for name in match.matched or []:
            by_name.setdefault(name, []).append((match.id, match.source_date))
    routed: dict[str, None] = {}
    for documents in by_name.values():
        if len(documents) > ROUTING_MAX_SHARE * in_scope:
            continue
        if latest:
            dates = [day for _, day in documents if day is not None]
            newest = max(dates) if dates else None
            documents = [(d, day) for d, day in documents if day == newest] or documents
        for document_id, _ in documents:
            routed.setdefault(document_id, None)
    return (list(routed) or None), names, latest


def model_scope(
    request: RetrievalRequest, model: ModelInScope, document_ids: Sequence[str] | None
) -> ScopeSql:
    """The compiled scope of one embedding model's knowledge bases for ``request``.

    Args:
        request: The question and its filters.
        model: The model and the knowledge bases in scope that use it.
        document_ids: The documents to search (routed or the request's), None for all.
    """
    return compile_scope(replace(request_scope(request, document_ids), kb_ids=tuple(model.kb_ids)))


def search_plan(
    database: Database,
    scope: ScopeSql,
    top_k: int,
    dimension: int,
    chunks: int | None = None,
    graph: int | None = None,
) -> SearchPlan:
    """How a search of ``scope`` for ``top_k`` passages walks it.

    Each arm looks :data:`CANDIDATE_FACTOR` times deeper than the answer needs. The
    planner cannot be left to choose between the index and an exact scan (the scope's
    joins make it expect a handful of rows, so it would sort every chunk of the
    knowledge base by distance): the scope's size, read from its versions' chunk
    counts, decides instead. A scope of at most :data:`EXACT_SEARCH_MAX_CHUNKS` chunks
    is compared exactly, anything larger walks the HNSW index, keeping more candidates
    the larger the graph (:func:`ef_search_for`). The full-text arm reads the chunks of
    the question's rarest words within :data:`TEXT_POSTINGS` postings, unless the scope
    is small and filtered.

    Args:
        database: The database.
        scope: The compiled scope.
        top_k: Passages the search returns.
        dimension: The embedding dimension of the knowledge bases in scope.
        chunks: The scope's chunks when already known; else counted here.
        graph: The chunks in the dimension's HNSW graph when already known (read with
            the models in scope); else read here if the search walks it.
    """
    limit = max(top_k * CANDIDATE_FACTOR, MIN_CANDIDATES)
    counted = (
        chunks
        if chunks is not None
        else store.scope_chunk_count(database, scope, EXACT_SEARCH_MAX_CHUNKS + 1)
    )
    exact = counted <= EXACT_SEARCH_MAX_CHUNKS
    if exact:
        graph = 0
    elif graph is None:  # only a walk needs the graph's size
        graph = vector_index.indexed_chunks(database, dimension)
    # The budget counts postings over whole knowledge bases: a filtered scope holds only
    # some of them, so a small filtered scope scores every chunk of its own instead.
    filtered = scope.scope.document_ids is not None or bool(scope.metadata)
    return SearchPlan(
        limit=limit,
        exact=exact,
        ef_search=ef_search_for(graph, limit),
        postings=None if exact and filtered else TEXT_POSTINGS,
    )


def ef_search_for(graph_chunks: int, limit: int) -> int:
    """``hnsw.ef_search`` for a walk of a graph of ``graph_chunks`` returning ``limit``.

    At least the limit and :data:`EF_SEARCH_MIN`, one more candidate per
    :data:`EF_SEARCH_CHUNKS_PER_CANDIDATE` chunks beyond, at most :data:`EF_SEARCH_MAX`.
    """
    grown = -(-graph_chunks // EF_SEARCH_CHUNKS_PER_CANDIDATE)
    return min(max(limit, EF_SEARCH_MIN, grown), EF_SEARCH_MAX)


def hybrid_query(
    database: Database,
    request: RetrievalRequest,
    model: ModelInScope,
    document_ids: Sequence[str] | None,
    chunks: int | None = None,
) -> HybridQuery:
    """The hybrid statement :func:`search_model` runs for one embedding model.

    Args:
        database: The database (the scope's size chooses the plan).
        request: The question and its filters.
        model: The model and the knowledge bases in scope that use it.
        document_ids: The documents to search (routed or the request's), None for all.
        chunks: The chunks in that scope, when already known (else counted).
    """
    from shared.embeddings import get_embedder

    dim = model.dimension
    terms = list(dict.fromkeys(_FTS_TERM.findall(" ".join(or_query_terms(request.query)))))
    scope = model_scope(request, model, document_ids)
    with span("ragline.retrieval.embed"):
        vector = vector_literal(get_embedder(model.name, dim).embed([request.query])[0])
    return HybridQuery(
        scope=scope,
        vector=vector,
        dim=dim,
        plan=search_plan(database, scope, request.top_k, dim, chunks, model.indexed),
        tsquery=" | ".join(terms),
        terms=" ".join(terms),
    )


def search_model(
    database: Database,
    request: RetrievalRequest,
    model: ModelInScope,
    document_ids: Sequence[str] | None,
    chunks: int | None = None,
) -> ArmRankings:
    """Both arms for the knowledge bases of one embedding model, in one statement.

    Args:
        database: The database.
        request: The question and its filters.
        model: The model and the knowledge bases in scope that use it.
        document_ids: The documents to search (routed or the request's), None for all.
        chunks: The chunks in that scope, when already known (else counted).

    Returns:
        Each arm's ranking and every candidate's row.
    """
    with span("ragline.retrieval.search", embedding_model=model.name) as current:
        query = hybrid_query(database, request, model, document_ids, chunks)
        found = store.hybrid_search(database, query)
        current.set_attribute("ragline.candidates", len(found))
    vector_hits = [row for row in found if row.distance is not None]
    text_hits = [row for row in found if row.rank is not None]
    return ArmRankings(
        vector=[row.id for row in sorted(vector_hits, key=lambda r: (r.distance, r.id))],
        text=[row.id for row in sorted(text_hits, key=lambda r: (-(r.rank or 0.0), r.id))],
        rows=found,
    )


def _passage(row: HybridRow, score: float) -> Passage:
    return Passage(
        chunk_id=int(row.id),
        document_id=row.document_id,
        version_id=row.version_id,
        kb_id=row.kb_id,
        filename=row.filename,
        title=row.title,
        text=row.text,
        page_start=row.page_start,
        page_end=row.page_end,
        char_start=row.char_start,
        char_end=row.char_end,
        heading_path=tuple(row.heading_path or ()),
        score=round(score, 6),
        vector_score=None if row.similarity is None else round(float(row.similarity), 6),
        text_score=None if row.rank is None else round(float(row.rank), 6),
    )
