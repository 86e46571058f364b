"""A selective scope still gets its top_k: access and filters apply during the HNSW walk.

The HNSW index holds every chunk of a dimension, whatever its knowledge base or
workspace. A limited viewer granted one small knowledge base, or a metadata filter
matching one small document, selects a few chunks among many; pgvector's iterative
scans (``hnsw.iterative_scan``) keep walking the graph until enough of them pass the
scope, so the search returns k passages when k exist. ``EXACT_SEARCH_MAX_CHUNKS`` is
lowered so these small scopes walk the index (as large ones do) instead of being
compared exactly. A control run with iterative scans off shows the scope is selective
enough that a plain walk would come back short.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.retrieval import search
from shared.retrieval.search import RetrievalRequest
from shared.store import search as store
from shared.store.search import ModelInScope, SearchPlan
from tests.support.api import Api, body_of
from tests.support.principals import Caller, invite

TOP_K = 10
SMALL_CHUNKS = 12
QUERY = "what does the keeper write about tides and lighthouses"


def _notes(topic: str, subject: str, count: int, start: int = 0) -> bytes:
    return "\n\n".join(
        f"Note {n} on {topic}: the {subject} writes about {topic} every morning."
        for n in range(start, start + count)
    ).encode()


def _chunk_count(stack: LocalStack, kb_id: str) -> int:
    return int(
        stack.database.scalar("SELECT count(*) FROM chunks WHERE kb_id = CAST(:k AS uuid)", k=kb_id)
    )


@pytest.fixture
def crowd(clean_stack: LocalStack) -> Iterator[dict[str, Any]]:
    """Two large knowledge bases about the query's topic, one small one about another,
    a small tagged document inside a large one, and a limited viewer granted the small
    knowledge base only."""
    stack = clean_stack
    owner = Api(stack)
    settings = {"chunk_tokens": 16, "chunk_overlap": 0}
    large = [owner.create_kb(f"large-{n}", **settings) for n in range(2)]
    small = owner.create_kb("small", **settings)
    for kb in large:
        for part in range(2):
            owner.upload(
                kb["id"], f"tides-{part}.md", _notes("tides and lighthouses", "keeper", 150, part)
            )
    owner.upload(small["id"], "bread.md", _notes("bread and ovens", "baker", SMALL_CHUNKS))
    tagged = owner.upload(
        large[0]["id"],
        "rare.md",
        _notes("bread and ovens", "baker", SMALL_CHUNKS),
        metadata={"shelf": "rare"},
    )
    stack.wait_idle(300)
    lim = invite(owner, stack, "default", "lim", "viewer", limited=True)
    granted = owner.put(
        f"/v1/knowledge-bases/{small['id']}/grants/{lim.id}", json={"access": "read"}
    )
    assert granted.status_code == 200
    assert _chunk_count(stack, small["id"]) >= SMALL_CHUNKS > TOP_K
    assert sum(_chunk_count(stack, kb["id"]) for kb in large) > 40 * SMALL_CHUNKS
    yield {"owner": owner, "large": large, "small": small, "tagged": tagged, "lim": lim}


@pytest.fixture
def index_for_small_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scopes of a dozen chunks walk the HNSW index, as a large scope does."""
    monkeypatch.setattr(search, "EXACT_SEARCH_MAX_CHUNKS", 4)


def _vector_arm(stack: LocalStack, request: RetrievalRequest) -> tuple[list[int], str]:
    model = ModelInScope(name="hashing-384", dimension=384, kb_ids=list(request.kb_ids))
    query = search.hybrid_query(stack.database, request, model, request.document_ids)
    assert not query.plan.exact
    plan = store.explain_hybrid_search(stack.database, query)
    arms = search.search_model(stack.database, request, model, request.document_ids)
    return arms.vector, plan


def _limited_request(crowd: dict[str, Any]) -> RetrievalRequest:
    lim: Caller = crowd["lim"]
    return RetrievalRequest(
        query=QUERY,
        kb_ids=[crowd["small"]["id"]],
        workspace="default",
        top_k=TOP_K,
        route=False,
        reader=lim.id,
        granted_only=True,
    )


def _rare_request(crowd: dict[str, Any]) -> RetrievalRequest:
    return RetrievalRequest(
        query=QUERY,
        kb_ids=[kb["id"] for kb in crowd["large"]],
        workspace="default",
        top_k=TOP_K,
        route=False,
        metadata={"shelf": "rare"},
    )


@pytest.mark.usefixtures("index_for_small_scopes")
def test_a_limited_viewer_gets_k_passages_of_their_one_small_knowledge_base(
    clean_stack: LocalStack, crowd: dict[str, Any]
) -> None:
    small = _chunk_count(clean_stack, crowd["small"]["id"])
    vector, plan = _vector_arm(clean_stack, _limited_request(crowd))
    assert "chunks_embedding_hnsw_384" in plan
    assert len(vector) == small  # every chunk of the scope: it has fewer than the arm's limit

    lim: Caller = crowd["lim"]
    response = lim.api.post(
        "/v1/retrieve",
        json={"knowledge_base_ids": [crowd["small"]["id"]], "query": QUERY, "top_k": TOP_K},
    )
    passages = body_of(response)["passages"]
    assert len(passages) == TOP_K
    assert {p["kb_id"] for p in passages} == {crowd["small"]["id"]}


@pytest.mark.usefixtures("index_for_small_scopes")
def test_a_filter_matching_few_chunks_among_many_gets_k_passages(
    clean_stack: LocalStack, crowd: dict[str, Any]
) -> None:
    vector, plan = _vector_arm(clean_stack, _rare_request(crowd))
    assert "chunks_embedding_hnsw_384" in plan
    tagged = clean_stack.database.scalar(
        "SELECT count(*) FROM chunks WHERE document_id = CAST(:d AS uuid)",
        d=crowd["tagged"]["document_id"],
    )
    assert len(vector) == tagged  # every chunk of the scope: it has fewer than the arm's limit
    response = crowd["owner"].post(
        "/v1/retrieve",
        json={
            "knowledge_base_ids": [kb["id"] for kb in crowd["large"]],
            "query": QUERY,
            "top_k": TOP_K,
            "filters": {"metadata": {"shelf": "rare"}},
        },
    )
    passages = body_of(response)["passages"]
    assert len(passages) == TOP_K
    assert {p["document_id"] for p in passages} == {crowd["tagged"]["document_id"]}


@pytest.mark.usefixtures("index_for_small_scopes")
def test_without_iterative_scans_the_same_walks_come_back_short(
    clean_stack: LocalStack, crowd: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: these scopes are selective enough that the walk needs iterative scans.
    def plain_walk(plan: SearchPlan) -> dict[str, str | int]:
        return {"hnsw.ef_search": plan.ef_search, "enable_sort": "off"}

    monkeypatch.setattr(store, "plan_settings", plain_walk)
    for request in (_limited_request(crowd), _rare_request(crowd)):
        vector, plan = _vector_arm(clean_stack, request)
        assert "chunks_embedding_hnsw_384" in plan
        assert len(vector) < TOP_K, request
