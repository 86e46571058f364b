"""Answers over real HTTP: the SSE stream read by a standard SSE parser, and the OpenAI path.

The stack is served on a real port; the real ``openai`` client talks to the local
OpenAI-compatible server of ``tests/support/openai_server.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sseclient

from scripts.localstack.stack import LocalStack
from shared.answering.service import NOT_IN_DOCUMENTS
from tests.support.api import Api
from tests.support.openai_server import LLM_API_KEY, LLM_MODEL, OpenAIServer
from tests.support.stack import served, wipe_stack

HANDBOOK = """# Support handbook

## Refunds

Customers may ask for a refund within 30 days of purchase. Refunds are paid to the
original card within five business days.

## Shipping

Orders ship from the Lyon warehouse every weekday at noon.
"""
# The owner's bearer header, set by the ``site`` fixture.
AUTH: dict[str, str] = {}
QUESTION = "How many days do customers have to ask for a refund?"


@pytest.fixture(scope="module")
def site(stack: LocalStack) -> Iterator[dict[str, str]]:
    """A knowledge base with the handbook, served over HTTP."""
    wipe_stack(stack)
    api = Api(stack)
    kb = api.create_kb("support")
    api.ingest(kb["id"], "handbook.md", HANDBOOK.encode())
    AUTH["Authorization"] = f"Bearer {api.token}"
    with served(stack.app) as url:
        yield {"url": url, "kb": kb["id"], "token": api.token}
    wipe_stack(stack)


def stream(url: str, **params: Any) -> tuple[requests.Response, list[sseclient.Event]]:
    response = requests.get(
        f"{url}/v1/ask/stream", params=params, stream=True, timeout=60, headers=AUTH
    )
    events = (
        list(sseclient.SSEClient(response.iter_content(chunk_size=None)).events())
        if response.ok
        else []
    )
    return response, events


def payloads(events: list[sseclient.Event], name: str) -> list[Any]:
    import json

    return [json.loads(event.data) for event in events if event.event == name]


def test_stream_sends_start_tokens_citations_done_like_the_json_endpoint(
    site: dict[str, str],
) -> None:
    response, events = stream(site["url"], knowledge_base_id=site["kb"], q=QUESTION)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "no-cache" in response.headers["Cache-Control"]
    assert response.headers["X-Accel-Buffering"] == "no"
    names = [event.event for event in events]
    assert names[0] == "start" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) == {"token"} and len(names) > 3
    start, done = payloads(events, "start")[0], payloads(events, "done")[0]
    assert start["turn_id"] == done["turn_id"]
    assert "".join(p["t"] for p in payloads(events, "token")) == done["answer"]
    assert payloads(events, "citations")[0]["citations"] == done["citations"]
    assert "30 days" in done["answer"]

    as_json = requests.post(
        f"{site['url']}/v1/ask",
        json={"knowledge_base_ids": [site["kb"]], "question": QUESTION},
        timeout=60,
        headers=AUTH,
    ).json()
    assert done["citations"] == as_json["citations"]
    assert done["citations"] and done["citations"][0]["filename"] == "handbook.md"


def test_stream_continues_a_session(site: dict[str, str]) -> None:
    _, first = stream(site["url"], knowledge_base_id=site["kb"], q=QUESTION)
    session = payloads(first, "start")[0]["session_id"]
    _, second = stream(
        site["url"],
        knowledge_base_id=site["kb"],
        q="And where do orders ship from?",
        session_id=session,
    )
    assert payloads(second, "start")[0]["session_id"] == session
    assert "Lyon" in payloads(second, "done")[0]["answer"]


def test_openai_answers_stream_with_checked_citations_and_usage(
    stack: LocalStack, site: dict[str, str], llm: OpenAIServer
) -> None:
    llm.script_chat("Customers have 30 days to ask for a refund [1]. Also see [7].")
    response, events = stream(site["url"], knowledge_base_id=site["kb"], q=QUESTION)

    assert response.status_code == 200
    done = payloads(events, "done")[0]
    streamed = "".join(p["t"] for p in payloads(events, "token"))
    # [7] points at no passage: dropped from the text as it streamed, and never cited.
    assert "[7]" not in streamed and streamed == done["answer"]
    assert done["answer"].startswith("Customers have 30 days to ask for a refund [1].")
    assert [c["n"] for c in done["citations"]] == [1]
    assert done["usage"]["model"] == LLM_MODEL
    assert done["usage"]["prompt_tokens"] > 0 and done["usage"]["completion_tokens"] > 0

    sent = llm.requests_to("/v1/chat/completions")[-1]
    assert sent.json["model"] == LLM_MODEL and sent.json["stream"] is True
    assert sent.headers["authorization"] == f"Bearer {LLM_API_KEY}"
    assert "[1]" in sent.json["messages"][-1]["content"] or any(
        "[1]" in message["content"] for message in sent.json["messages"]
    )
    stored = stack.database.one(
        "SELECT status, generator, model, prompt_tokens, total_tokens FROM chat_turns"
        " WHERE id = CAST(:id AS uuid)",
        id=done["turn_id"],
    )
    assert stored is not None
    assert stored[:3] == ["answered", "llm", LLM_MODEL] and stored[4] >= stored[3] > 0


def test_openai_rate_limit_is_retried_after_retry_after(
    site: dict[str, str], llm: OpenAIServer
) -> None:
    llm.script_chat("Thirty days [1].")
    llm.fail(429, times=1, headers={"Retry-After": "1"}, path="/v1/chat/completions")
    started = time.monotonic()
    response = requests.post(
        f"{site['url']}/v1/ask",
        json={"knowledge_base_ids": [site["kb"]], "question": QUESTION},
        timeout=60,
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == "Thirty days [1]."
    assert len(llm.requests_to("/v1/chat/completions")) == 2
    assert time.monotonic() - started >= 0.9  # the client waited as it was told


def test_openai_failure_is_a_clear_error_and_a_failed_turn(
    stack: LocalStack, site: dict[str, str], llm: OpenAIServer
) -> None:
    llm.fail(500, times=20, path="/v1/chat/completions")
    response = requests.post(
        f"{site['url']}/v1/ask",
        json={"knowledge_base_ids": [site["kb"]], "question": QUESTION},
        timeout=60,
        headers=AUTH,
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "llm_unavailable" and "500" in error["message"]

    _, events = stream(site["url"], knowledge_base_id=site["kb"], q=QUESTION)
    assert [event.event for event in events][-1] == "error"
    failure = payloads(events, "error")[0]
    assert failure["code"] == "llm_unavailable"
    status = stack.database.scalar(
        "SELECT status FROM chat_turns WHERE id = CAST(:id AS uuid)", id=failure["turn_id"]
    )
    assert status == "failed"


def test_nothing_relevant_needs_no_model(site: dict[str, str], llm: OpenAIServer) -> None:
    _, events = stream(
        site["url"], knowledge_base_id=site["kb"], q="What did Tesla report as revenue?"
    )
    assert payloads(events, "done")[0]["answer"] == NOT_IN_DOCUMENTS
    assert llm.requests_to("/v1/chat/completions") == []


def test_a_client_disconnect_stops_generation(
    stack: LocalStack, site: dict[str, str], llm: OpenAIServer
) -> None:
    words = " ".join(f"word{n}" for n in range(400))
    llm.script_chat(words, interval=0.02)
    response = requests.get(
        f"{site['url']}/v1/ask/stream",
        params={"knowledge_base_id": site["kb"], "q": QUESTION},
        stream=True,
        timeout=60,
        headers=AUTH,
    )
    events = sseclient.SSEClient(response.iter_content(chunk_size=None)).events()
    turn_id = None
    for event in events:
        if event.event == "start":
            import json

            turn_id = json.loads(event.data)["turn_id"]
        if event.event == "token":
            break
    response.close()  # the browser tab went away

    record = llm.wait_streams(1, timeout=30)[0]
    assert record.aborted and record.sent < record.total
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline:
        status = stack.database.scalar(
            "SELECT status FROM chat_turns WHERE id = CAST(:id AS uuid)", id=turn_id
        )
        if status != "answering":
            break
        time.sleep(0.1)
    assert status == "cancelled"


def test_an_answer_past_its_deadline_ends_with_an_error_and_a_failed_turn(
    stack: LocalStack, site: dict[str, str], llm: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deadline keeps a stream inside the answer function's timeout (tests/unit/
    # test_terraform_timeouts.py); a zero deadline has passed by the first token.
    llm.script_chat("Customers have 30 days to ask for a refund [1].")
    expired = stack.runtime.settings.model_copy(update={"answer_deadline_s": 0.0})
    monkeypatch.setattr(stack.runtime, "settings", expired)

    _, events = stream(site["url"], knowledge_base_id=site["kb"], q=QUESTION)

    assert [event.event for event in events][-1] == "error"
    failure = payloads(events, "error")[0]
    assert failure["code"] == "answer_timeout" and failure["retryable"] is True
    assert payloads(events, "done") == []
    status = stack.database.scalar(
        "SELECT status FROM chat_turns WHERE id = CAST(:id AS uuid)", id=failure["turn_id"]
    )
    assert status == "failed"
