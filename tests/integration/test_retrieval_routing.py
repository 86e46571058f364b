"""Routing by name: a question naming a company searches only that company's documents,
unless its knowledge base has routing ``off`` (a topical collection)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.localstack.stack import LocalStack
from shared.db import Database
from shared.retrieval.search import RetrievalRequest, retrieve
from shared.store.scope import ScopeSql
from shared.store.search import SearchPlan
from shared.store.vector_index import indexed_chunks
from tests.support.api import Api
from tests.support.filings import COMPANIES
from tests.support.filings import filing as _filing
from tests.support.stack import wipe_stack


@pytest.fixture
def filings(stack: LocalStack) -> Iterator[dict[str, dict[str, str]]]:
    """The same three filings in a knowledge base with routing on and one with it off."""
    wipe_stack(stack)
    api = Api(stack)
    kbs: dict[str, dict[str, str]] = {}
    for routing in ("names", "off"):
        kb = api.create_kb(f"filings-{routing}", routing=routing, chunk_tokens=32, chunk_overlap=0)
        assert kb["routing"] == routing
        documents = {
            company: api.upload(kb["id"], f"{company.lower()}.md", _filing(company))["document_id"]
            for company in COMPANIES
        }
        kbs[kb["id"]] = documents
    stack.wait_idle(180)
    yield kbs
    wipe_stack(stack)


def _ask(stack: LocalStack, kb_id: str, question: str) -> tuple[set[str], list[str] | None]:
    found = retrieve(
        stack.database,
        RetrievalRequest(
            query=question, kb_ids=[kb_id], workspace=stack.settings.default_workspace, top_k=8
        ),
    )
    return {p.document_id for p in found.passages}, found.routed_to


def test_a_named_company_routes_only_where_routing_is_on(
    stack: LocalStack, filings: dict[str, dict[str, str]]
) -> None:
    (on_kb, on_docs), (off_kb, _) = filings.items()
    question = "How did Globex's revenue grow in the quarter?"

    documents, routed_to = _ask(stack, on_kb, question)
    assert routed_to == [on_docs["Globex"]]
    assert documents == {on_docs["Globex"]}

    documents, routed_to = _ask(stack, off_kb, question)
    assert routed_to is None
    assert len(documents) > 1, "with routing off every filing's revenue paragraphs compete"


def test_routing_can_be_switched_on_an_existing_knowledge_base(
    stack: LocalStack, filings: dict[str, dict[str, str]]
) -> None:
    api = Api(stack)
    (_, _), (off_kb, off_docs) = filings.items()
    switched = api.patch(f"/v1/knowledge-bases/{off_kb}", json={"routing": "names"})
    assert switched.status_code == 200, switched.get_data(as_text=True)
    assert (switched.json or {})["routing"] == "names"
    assert _ask(stack, off_kb, "What was Initech's revenue?")[1] == [off_docs["Initech"]]

    refused = api.patch(f"/v1/knowledge-bases/{off_kb}", json={"routing": "maybe"})
    assert refused.status_code == 400
    refused = api.patch(f"/v1/knowledge-bases/{off_kb}", json={"embedding_model": "minilm"})
    assert refused.status_code == 400, "model and chunking cannot change under stored chunks"
    missing = api.patch("/v1/knowledge-bases/no-such-kb", json={"routing": "off"})
    assert missing.status_code == 404


def test_a_search_knows_its_size_from_what_it_already_read(
    stack: LocalStack, filings: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole knowledge base's size comes from its statistics, a routed search's from the
    documents weighed; both equal the count the plan would otherwise make."""
    from shared.retrieval import search
    from shared.store import search as store

    planned: list[tuple[int | None, int]] = []
    real_plan = search.search_plan

    def recording_plan(
        database: Database,
        scope: ScopeSql,
        top_k: int,
        dimension: int,
        chunks: int | None = None,
        graph: int | None = None,
    ) -> SearchPlan:
        counted = store.scope_chunk_count(database, scope, search.EXACT_SEARCH_MAX_CHUNKS + 1)
        planned.append((chunks, counted))
        # The graph's size comes with the models, as the index's estimate says.
        assert graph == indexed_chunks(database, dimension)
        return real_plan(database, scope, top_k, dimension, chunks, graph)

    monkeypatch.setattr(search, "search_plan", recording_plan)
    (on_kb, on_docs), _ = filings.items()
    routed_question = "How did Globex's revenue grow in the quarter?"
    _, routed_to = _ask(stack, on_kb, routed_question)
    assert routed_to == [on_docs["Globex"]]
    _ask(stack, on_kb, "How did revenue grow in the quarter?")
    assert len(planned) == 2
    assert all(known == counted and counted > 0 for known, counted in planned), planned
    assert planned[0][1] < planned[1][1]  # one filing, then all three
    # A metadata filter is the plan's to count.
    planned.clear()
    retrieve(
        stack.database,
        RetrievalRequest(
            query="revenue",
            kb_ids=[on_kb],
            workspace=stack.settings.default_workspace,
            top_k=8,
            metadata={"shelf": "none"},
        ),
    )
    assert [known for known, _ in planned] == [None]
