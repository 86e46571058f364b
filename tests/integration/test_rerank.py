"""Reranking against local servers: the chat model listwise, and a /rerank endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.localstack.stack import LocalStack
from shared.config import get_settings
from shared.retrieval.rerank import (
    ChatReranker,
    EndpointReranker,
    get_reranker,
    rerank_passages,
)
from shared.retrieval.types import Passage
from tests.support.api import Api
from tests.support.openai_server import OpenAIServer, RecordedRequest, Reply
from tests.support.passages import passage

TEXTS = ["Apple's net sales were $81.8 billion.", "Intel's tax rate was 696%.", "NVIDIA grew."]


def _passages() -> list[Passage]:
    return [
        passage(n, text, filename=f"{n}.pdf", score=1.0 / (n + 1)) for n, text in enumerate(TEXTS)
    ]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key="sk-rerank") as running:
        yield running


def _chat(server: OpenAIServer, timeout_s: float = 5.0) -> ChatReranker:
    return ChatReranker("sk-rerank", server.base_url, "test-chat-model", timeout_s)


def test_the_chat_model_orders_the_candidates(server: OpenAIServer) -> None:
    server.script_chat("2, 3, 1")
    kept, reranked = rerank_passages(_chat(server), "Intel's tax rate?", _passages(), 2)
    assert reranked
    assert [p.chunk_id for p in kept] == [1, 2]
    (request,) = server.requests_to("/v1/chat/completions")
    prompt = request.json["messages"][-1]["content"]
    assert "Question: Intel's tax rate?" in prompt
    assert "[1] Apple's net sales" in prompt and "[3] NVIDIA grew." in prompt


def test_candidates_the_model_leaves_out_follow_in_fused_order(server: OpenAIServer) -> None:
    server.script_chat("Passage 3 is best, then 9 (not a candidate).")
    kept, reranked = rerank_passages(_chat(server), "q", _passages(), 3)
    assert reranked
    assert [p.chunk_id for p in kept] == [2, 0, 1]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(delay=2.0, body={}),  # slower than the reranker's timeout
        Reply(status=500, body={"error": {"message": "down"}}),
        Reply(drop=True),
    ],
    ids=["timeout", "server-error", "dropped"],
)
def test_a_failing_chat_model_leaves_the_fused_order(server: OpenAIServer, reply: Reply) -> None:
    server.enqueue(reply, path="/v1/chat/completions")
    kept, reranked = rerank_passages(_chat(server, timeout_s=0.5), "q", _passages(), 3)
    assert not reranked
    assert [p.chunk_id for p in kept] == [0, 1, 2]


def test_a_reply_naming_no_candidate_leaves_the_fused_order(server: OpenAIServer) -> None:
    server.script_chat("I cannot rank these.")
    kept, reranked = rerank_passages(_chat(server), "q", _passages(), 2)
    assert not reranked
    assert [p.chunk_id for p in kept] == [0, 1]


def _scores(scores: list[float], field: str, wrap: bool) -> Reply:
    results = [{"index": i, field: s} for i, s in enumerate(scores)]
    return Reply(body={"results": results} if wrap else results)


def test_a_rerank_endpoint_orders_by_relevance_score(server: OpenAIServer) -> None:
    server.route("/v1/rerank", lambda request: _scores([0.1, 0.2, 0.9], "relevance_score", True))
    reranker = EndpointReranker(f"{server.base_url}/rerank", "rerank-model", "sk-rerank", 5.0)
    kept, reranked = rerank_passages(reranker, "Which company grew?", _passages(), 3)
    assert reranked
    assert [p.chunk_id for p in kept] == [2, 1, 0]
    (request,) = server.requests_to("/v1/rerank")
    assert request.json == {
        "query": "Which company grew?",
        "documents": TEXTS,
        "top_n": 3,
        "model": "rerank-model",
    }
    assert request.headers.get("authorization") == "Bearer sk-rerank"


def test_the_tei_shape_sends_texts_and_reads_a_bare_list() -> None:
    def tei(request: RecordedRequest) -> Reply:
        assert set(request.json) == {"query", "texts", "top_n"}
        return _scores([0.5, 0.7, 0.1], "score", False)

    with OpenAIServer() as open_server:  # no key, as a self-hosted TEI
        open_server.route("/v1/rerank", tei)
        url = f"{open_server.base_url}/rerank"
        reranker = EndpointReranker(url, "", "", 5.0, texts_field="texts")
        kept, reranked = rerank_passages(reranker, "q", _passages(), 2)
    assert reranked
    assert [p.chunk_id for p in kept] == [1, 0]


@pytest.mark.parametrize(
    "reply",
    [Reply(delay=2.0, body={"results": []}), Reply(status=503, body={}), Reply(raw=b"not json")],
    ids=["timeout", "unavailable", "garbage"],
)
def test_a_failing_rerank_endpoint_leaves_the_fused_order(
    server: OpenAIServer, reply: Reply
) -> None:
    server.enqueue(reply, path="/v1/rerank")
    reranker = EndpointReranker(f"{server.base_url}/rerank", "", "", 0.5)
    kept, reranked = rerank_passages(reranker, "q", _passages(), 3)
    assert not reranked
    assert [p.chunk_id for p in kept] == [0, 1, 2]


def test_reranking_is_off_by_default() -> None:
    settings = get_settings()
    assert settings.rerank == "off"
    assert get_reranker(settings) is None
    configured = settings.model_copy(
        update={"rerank": "endpoint", "rerank_url": "http://127.0.0.1:1/rerank"}
    )
    assert isinstance(get_reranker(configured), EndpointReranker)
    assert configured.rerank_texts_field == "documents"


def test_retrieval_through_the_api_takes_the_endpoints_order(
    clean_stack: LocalStack, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/v1/retrieve: 20 fused candidates go to the endpoint, the top_k come back reranked."""
    api = Api(clean_stack)
    kb = api.create_kb("rerank")
    for n in range(3):
        body = f"# Report {n}\n\nQuarterly revenue of segment {n} grew by {n + 1} percent.\n"
        api.upload(kb["id"], f"report-{n}.md", body.encode())
    clean_stack.wait_idle(120)
    question = {"knowledge_base_ids": [kb["id"]], "query": "quarterly revenue", "top_k": 2}
    plain = api.post("/v1/retrieve", json=question).json or {}
    fused = [p["filename"] for p in plain["passages"]]

    def reverse(request: RecordedRequest) -> Reply:
        count = len(request.json["documents"])
        return _scores([float(i) for i in range(count)], "relevance_score", True)

    server.route("/v1/rerank", reverse)
    runtime = clean_stack.runtime
    configured = runtime.settings.model_copy(
        update={
            "rerank": "endpoint",
            "rerank_url": f"{server.base_url}/rerank",
            "rerank_api_key": "sk-rerank",
        }
    )
    monkeypatch.setattr(runtime, "settings", configured)
    reranked = api.post("/v1/retrieve", json=question).json or {}
    (sent,) = server.requests_to("/v1/rerank")
    assert len(sent.json["documents"]) == 3  # every candidate, not only top_k
    last_first = [p["filename"] for p in reranked["passages"]]
    assert len(last_first) == 2
    assert last_first != fused[:2]
    assert last_first[0] not in fused[:2]  # the fused order's last candidate now leads
