"""The OpenAI-compatible chat routes, driven by the official ``openai`` client over HTTP.

The stack is served on a loopback port; the client's ``base_url`` is its origin plus
``/v1/openai`` and its ``api_key`` a Ragline API key (or ID token), exactly as a chat
frontend would be configured.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of
from tests.support.openai_server import LLM_MODEL, OpenAIServer
from tests.support.principals import api_key, workspace_owner
from tests.support.stack import served, wipe_stack

HANDBOOK = """# Support handbook

## Refunds

Customers may ask for a refund within 30 days of purchase. Refunds are paid to the
original card within five business days.

## Shipping

Orders ship from the Lyon warehouse every weekday at noon.
"""
RIVAL = "The rival's secret plan: the harbour opens at dawn on Tuesdays."
QUESTION = "How many days do customers have to ask for a refund?"


@pytest.fixture(scope="module")
def site(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """The handbook in the default workspace, a rival workspace's knowledge base, a key."""
    wipe_stack(stack)
    owner = Api(stack)
    kb = owner.create_kb("support")
    owner.ingest(kb["id"], "handbook.md", HANDBOOK.encode())
    rival = workspace_owner(stack, "rival", "rival-ws")
    rival_kb = rival.api.create_kb("harbour")
    rival.api.ingest(rival_kb["id"], "plan.md", RIVAL.encode())
    key = api_key(owner, stack, stack.settings.default_workspace, "chat-frontend", "viewer")
    with served(stack.app) as url:
        yield {
            "url": url,
            "kb": kb,
            "rival_kb": rival_kb,
            "key": key.api.token,
            "rival_token": rival.api.token,
            "key_api": key.api,
            "owner": owner,
        }
    wipe_stack(stack)


def client(site: dict[str, Any], api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{site['url']}/v1/openai", api_key=api_key or site["key"], max_retries=0
    )


def test_models_are_the_knowledge_bases_the_caller_can_read(site: dict[str, Any]) -> None:
    models = list(client(site).models.list())

    assert [model.id for model in models] == [site["kb"]["id"]]
    [model] = models
    assert model.object == "model" and model.owned_by == "default" and model.created > 0
    assert (model.model_extra or {})["name"] == "support"
    # One model by id or by name; another workspace's is not found.
    assert client(site).models.retrieve("support").id == site["kb"]["id"]
    with pytest.raises(openai.NotFoundError):
        client(site).models.retrieve(site["rival_kb"]["id"])
    # The rival workspace's owner sees only theirs (its token acts in its own workspace).
    rival = [m.id for m in client(site, site["rival_token"]).models.list()]
    assert rival == [site["rival_kb"]["id"]]


def test_a_non_streamed_answer_cites_its_sources(site: dict[str, Any]) -> None:
    completion = client(site).chat.completions.create(
        model=site["kb"]["id"],
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": QUESTION},
        ],
        temperature=0.2,
        max_tokens=300,
    )

    assert completion.object == "chat.completion"
    assert completion.model == site["kb"]["id"]
    [choice] = completion.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    answer = choice.message.content or ""
    assert "30 days" in answer and "[1]" in answer
    citations = (choice.message.model_extra or {})["citations"]
    assert citations and citations[0]["n"] == 1 and citations[0]["filename"] == "handbook.md"
    assert {"document_id", "chunk_id", "page_start", "snippet", "score"} <= citations[0].keys()
    assert completion.usage is not None and completion.usage.total_tokens >= 0
    # The turn is stored like /v1/ask's, with the same citations.
    turn = (completion.model_extra or {})["ragline"]["turn_id"]
    stored = body_of(site["key_api"].get(f"/v1/turns/{turn}/citations"))
    assert stored["citations"] == citations


def test_a_streamed_answer_ends_with_citations_usage_and_done(site: dict[str, Any]) -> None:
    stream = client(site).chat.completions.create(
        model="support",  # the knowledge base's name works as the model too
        messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert "30 days" in text and "[1]" in text
    finished = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert [chunk.choices[0].finish_reason for chunk in finished] == ["stop"]
    citations = (finished[0].choices[0].delta.model_extra or {})["citations"]
    assert citations and citations[0]["filename"] == "handbook.md"
    # include_usage: a last chunk with no choices and the usage.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None

    raw = requests.post(
        f"{site['url']}/v1/openai/chat/completions",
        json={
            "model": site["kb"]["id"],
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
        },
        headers={"Authorization": f"Bearer {site['key']}"},
        timeout=60,
    )
    assert raw.headers["Content-Type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")
    lines = [line[len("data: ") :] for line in raw.text.splitlines() if line.startswith("data: ")]
    sent = [json.loads(line) for line in lines[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in sent)
    assert sent[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert set(sent[-1]["ragline"]) == {"turn_id", "session_id", "unsupported_citations"}
    assert "usage" not in sent[-1]  # only with stream_options.include_usage


def test_another_workspaces_knowledge_base_is_no_model(site: dict[str, Any]) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(site).chat.completions.create(
            model=site["rival_kb"]["id"], messages=[{"role": "user", "content": "harbour?"}]
        )

    error = raised.value
    assert error.status_code == 404
    assert error.code == "model_not_found" and error.param == "model"
    assert error.type == "invalid_request_error"
    assert "dawn" not in str(error.body)


@pytest.mark.parametrize(
    "change,code",
    [
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "invalid_messages"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "unsupported_parameter"),
        ({"n": 2}, "unsupported_parameter"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ]
            },
            "unsupported_content",
        ),
        ({"messages": [{"role": "tool", "content": "42"}]}, "invalid_request"),
        ({"messages": []}, "invalid_request"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_in_openais_shape(
    site: dict[str, Any], change: dict[str, Any], code: str
) -> None:
    body = {"model": site["kb"]["id"], "messages": [{"role": "user", "content": QUESTION}]}
    response = requests.post(
        f"{site['url']}/v1/openai/chat/completions",
        json={**body, **change},
        headers={"Authorization": f"Bearer {site['key']}"},
        timeout=60,
    )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["type"] == "invalid_request_error"


def test_no_or_a_bad_credential_is_a_401_the_sdk_understands(site: dict[str, Any]) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        client(site, "rlk_notarealkey000_" + "x" * 43).models.list()
    assert raised.value.type == "authentication_error"

    bare = requests.get(f"{site['url']}/v1/openai/models", timeout=30)
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"].startswith("Bearer")
    assert bare.json()["error"]["type"] == "authentication_error"


def test_the_conversation_is_the_history_and_is_not_stored_again(
    stack: LocalStack, site: dict[str, Any], llm: OpenAIServer
) -> None:
    # The follow-up is rewritten by one plain completion, then answered by a streamed one.
    llm.script_chat(
        lambda request: (
            "Orders ship from Lyon [1]."
            if request.json.get("stream")
            else "Where do orders ship from?"
        )
    )
    messages: list[Any] = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Customers have 30 days [1]."},
        {"role": "user", "content": "And where do orders ship from?"},
    ]
    before = stack.database.one("SELECT count(*) FROM chat_turns")
    completion = client(site).chat.completions.create(model=site["kb"]["id"], messages=messages)

    assert "Lyon" in (completion.choices[0].message.content or "")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sent = llm.requests_to("/v1/chat/completions")[-1].json
    assert sent["model"] == LLM_MODEL
    # The earlier exchange reached the model as history (its markers stripped).
    assert {"role": "assistant", "content": "Customers have 30 days."} in sent["messages"]
    assert {"role": "user", "content": QUESTION} in sent["messages"]
    # One request stores one turn: the resent history is not stored as turns again.
    after = stack.database.one("SELECT count(*) FROM chat_turns")
    assert before is not None and after is not None and after[0] == before[0] + 1
    session = (completion.model_extra or {})["ragline"]["session_id"]
    turns = body_of(site["key_api"].get(f"/v1/sessions/{session}/turns"))["turns"]
    assert [turn["question"] for turn in turns] == ["And where do orders ship from?"]
