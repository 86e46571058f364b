"""How the vector arm reaches the chunks: the HNSW index for a large scope, an exact scan
for a small one, and the workspace check inside the statement.

The planner's row estimates cannot be trusted with these scopes, so ``search_plan``
decides by the scope's chunk count (``EXACT_SEARCH_MAX_CHUNKS``, lowered here so a
small knowledge base stands for a large one). Plans are read with EXPLAIN in the
search's own transaction, so its settings apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.db.connection import Session
from shared.retrieval import search
from shared.retrieval.search import RetrievalRequest
from shared.store.search import ModelInScope
from shared.store.vector_index import indexed_chunks
from tests.support.api import Api
from tests.support.stack import wipe_stack

TOPICS = ["tides and lighthouses", "bread and ovens", "rivers and bridges"]


@pytest.fixture
def corpus(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """Three documents of ten one-paragraph chunks each, in one knowledge base."""
    wipe_stack(stack)
    api = Api(stack)
    kb = api.create_kb("plans", chunk_tokens=40, chunk_overlap=0)
    documents = {}
    for topic in TOPICS:
        body = "\n\n".join(
            f"Note {n} on {topic}: the keeper writes about {topic} every morning, {n} times."
            for n in range(10)
        )
        documents[topic] = api.upload(kb["id"], f"{topic.split()[0]}.md", body.encode())
    stack.wait_idle(180)
    yield {"kb": kb, "documents": documents}
    wipe_stack(stack)


def _plans(
    stack: LocalStack, request: RetrievalRequest, kb_ids: tuple[str, ...], monkeypatch: Any
) -> tuple[list[int], str]:
    """The vector ranking of ``search_model`` and the EXPLAIN of its statement."""
    original = Session.records
    plans: list[str] = []

    def explained(self: Session, record: type, sql: str, **params: Any) -> list[Any]:
        if sql.startswith("WITH vec AS MATERIALIZED"):
            rows = self.run("EXPLAIN " + sql, **params)
            plans.append("\n".join(str(row[0]) for row in rows))
        return original(self, record, sql, **params)

    monkeypatch.setattr(Session, "records", explained)
    model = ModelInScope(name="hashing-384", dimension=384, kb_ids=list(kb_ids))
    arms = search.search_model(stack.database, request, model, request.document_ids)
    monkeypatch.setattr(Session, "records", original)
    return arms.vector, plans[0]


def _exact(stack: LocalStack, kb_id: str, query: str, document_id: str | None) -> list[int]:
    from shared.db.connection import vector_literal
    from shared.embeddings import get_embedder

    vector = vector_literal(get_embedder("hashing-384").embed([query])[0])
    rows = stack.database.run(
        "SELECT id FROM chunks WHERE kb_id = CAST(:k AS uuid)"
        + (" AND document_id = CAST(:d AS uuid)" if document_id else "")
        + " ORDER BY cosine_distance(embedding::vector(384), CAST(:q AS vector(384))), id",
        k=kb_id,
        q=vector,
        **({"d": document_id} if document_id else {}),
    )
    return [row[0] for row in rows]


def test_a_large_scope_walks_the_index_and_a_small_one_is_scanned_exactly(
    stack: LocalStack, corpus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "EXACT_SEARCH_MAX_CHUNKS", 12)
    kb_id = corpus["kb"]["id"]
    query = "what does the keeper write about bread and ovens"
    everything = RetrievalRequest(query=query, kb_ids=[kb_id], workspace="default", top_k=5)
    ranking, plan = _plans(stack, everything, (kb_id,), monkeypatch)
    assert "chunks_embedding_hnsw_384" in plan
    # A graph this small is searched completely: the index finds the true order.
    assert ranking[:5] == _exact(stack, kb_id, query, None)[:5]

    one = corpus["documents"]["rivers and bridges"]["document_id"]
    narrow = RetrievalRequest(
        query=query, kb_ids=[kb_id], workspace="default", top_k=5, document_ids=[one]
    )
    ranking, plan = _plans(stack, narrow, (kb_id,), monkeypatch)
    assert "chunks_embedding_hnsw_384" not in plan
    assert "cosine_distance" in plan
    assert ranking == _exact(stack, kb_id, query, one)


def test_a_walk_keeps_more_candidates_the_larger_the_graph(
    stack: LocalStack, corpus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down: one candidate per chunk in the graph, no floor above the limit, so
    # the knowledge base's ~30 chunks stand for a graph of millions.
    monkeypatch.setattr(search, "EXACT_SEARCH_MAX_CHUNKS", 12)
    monkeypatch.setattr(search, "EF_SEARCH_CHUNKS_PER_CANDIDATE", 1)
    monkeypatch.setattr(search, "EF_SEARCH_MIN", 1)
    monkeypatch.setattr(search, "MIN_CANDIDATES", 1)
    stack.database.run("ANALYZE chunks")  # the graph's size estimate, as autovacuum keeps it
    graph = indexed_chunks(stack.database, 384)
    kb_id = corpus["kb"]["id"]
    model = ModelInScope(name="hashing-384", dimension=384, kb_ids=[kb_id])
    request = RetrievalRequest(query="bread", kb_ids=[kb_id], workspace="default", top_k=1)

    walk = search.search_plan(stack.database, search.model_scope(request, model, None), 1, 384)
    assert not walk.exact
    assert graph > walk.limit
    assert walk.ef_search == graph

    one = [corpus["documents"]["bread and ovens"]["document_id"]]
    small = search.search_plan(stack.database, search.model_scope(request, model, one), 1, 384)
    assert small.exact
    assert small.ef_search == walk.limit  # an exact search does not read the graph's size


def test_the_statement_itself_keeps_other_workspaces_out(
    stack: LocalStack, corpus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kb_id = corpus["kb"]["id"]
    request = RetrievalRequest(query="bread", kb_ids=[kb_id], workspace="default", top_k=5)
    assert _plans(stack, request, (kb_id,), monkeypatch)[0]
    # Even if a caller's list named a knowledge base of another workspace (retrieve()
    # resolves names per workspace first), the statement returns nothing.
    stranger = RetrievalRequest(query="bread", kb_ids=[kb_id], workspace="someone-else", top_k=5)
    assert _plans(stack, stranger, (kb_id,), monkeypatch)[0] == []
    assert search.retrieve(stack.database, stranger).passages == []


def test_versions_carry_the_chunk_statistics_bm25_reads(
    stack: LocalStack, corpus: dict[str, Any]
) -> None:
    # BM25's collection statistics come from the active versions, not a scan of every
    # chunk in scope: they must equal what the chunks themselves say.
    rows = stack.database.run(
        "SELECT v.chunk_count, v.token_total, count(c.id), sum(greatest(c.token_count, 1))"
        " FROM document_versions v JOIN chunks c ON c.version_id = v.id"
        " WHERE v.kb_id = CAST(:k AS uuid) GROUP BY v.id",
        k=corpus["kb"]["id"],
    )
    assert len(rows) == len(TOPICS)
    for chunk_count, token_total, counted, summed in rows:
        assert (chunk_count, token_total) == (counted, summed)


def test_versions_without_token_totals_still_rank_by_full_text(
    stack: LocalStack, corpus: dict[str, Any]
) -> None:
    # Versions stored before their totals were kept (or by a bulk load) have none:
    # BM25's mean length leaves them out instead of dividing by zero.
    kb_id = corpus["kb"]["id"]
    stack.database.run(
        "UPDATE document_versions SET token_total = NULL WHERE kb_id = CAST(:k AS uuid)",
        k=kb_id,
    )
    found = search.retrieve(
        stack.database,
        RetrievalRequest(query="bread and ovens", kb_ids=[kb_id], workspace="default", top_k=3),
    )
    assert [p.text_score is not None for p in found.passages] == [True, True, True]
    assert all("bread" in p.text for p in found.passages)
