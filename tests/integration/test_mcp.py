"""The MCP endpoint, driven by the official ``mcp`` SDK's client over real HTTP.

The stack is served on a loopback port and the client connects to ``<origin>/mcp`` with
the SDK's streamable HTTP transport and ``ClientSession``, a bearer credential in its
headers, as an MCP host would be configured.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import requests
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from scripts.localstack.stack import LocalStack
from tests.support.api import Api
from tests.support.principals import api_key, invite, workspace_owner
from tests.support.stack import served, wipe_stack

HANDBOOK = """# Support handbook

## Refunds

Customers may ask for a refund within 30 days of purchase. Refunds are paid to the
original card within five business days.

## Shipping

Orders ship from the Lyon warehouse every weekday at noon.
"""
RIVAL = "The harbour plan: the harbour gates open at dawn on Tuesdays for the ferries."
QUESTION = "How many days do customers have to ask for a refund?"
TOOLS = {"list_knowledge_bases", "search", "ask", "get_document"}

T = TypeVar("T")


@pytest.fixture(scope="module")
def site(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """The handbook in the default workspace, a rival workspace's document, a key."""
    wipe_stack(stack)
    owner = Api(stack)
    kb = owner.create_kb("support")
    handbook = owner.ingest(kb["id"], "handbook.md", HANDBOOK.encode())
    rival = workspace_owner(stack, "rival", "rival-ws")
    rival_kb = rival.api.create_kb("harbour")
    plan = rival.api.ingest(rival_kb["id"], "plan.md", RIVAL.encode())
    key = api_key(owner, stack, stack.settings.default_workspace, "mcp-host", "viewer")
    with served(stack.app) as url:
        yield {
            "url": url,
            "kb": kb,
            "handbook": handbook,
            "rival_kb": rival_kb,
            "plan": plan,
            "owner_token": owner.token,
            "owner": owner,
            "stack": stack,
            "key": key.api.token,
            "rival_token": rival.api.token,
        }
    wipe_stack(stack)


def with_session(url: str, token: str, use: Callable[[ClientSession], Awaitable[T]]) -> T:
    """Connect the SDK's client to ``url``/mcp as ``token`` and run ``use`` on the session."""

    async def run() -> T:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await use(session)

    return asyncio.run(run())


def call(site: dict[str, Any], token: str, tool: str, **arguments: Any) -> Any:
    """One tool call's result (``is_error``, ``structured_content``, ``content``)."""

    async def use(session: ClientSession) -> Any:
        return await session.call_tool(tool, arguments)

    return with_session(site["url"], token, use)


def text_of(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_the_sdk_client_lists_the_four_tools(site: dict[str, Any]) -> None:
    async def use(session: ClientSession) -> Any:
        return await session.list_tools()

    listed = with_session(site["url"], site["key"], use)

    assert {tool.name for tool in listed.tools} == TOOLS
    search = next(tool for tool in listed.tools if tool.name == "search")
    assert search.input_schema["required"] == ["query"]
    assert {"query", "knowledge_base_ids", "top_k"} <= search.input_schema["properties"].keys()


def test_list_knowledge_bases_shows_only_the_callers(site: dict[str, Any]) -> None:
    mine = call(site, site["key"], "list_knowledge_bases")
    theirs = call(site, site["rival_token"], "list_knowledge_bases")

    assert not mine.is_error
    assert [kb["id"] for kb in mine.structured_content["knowledge_bases"]] == [site["kb"]["id"]]
    assert [kb["id"] for kb in theirs.structured_content["knowledge_bases"]] == [
        site["rival_kb"]["id"]
    ]


def test_search_returns_ranked_passages_with_document_page_score_snippet(
    site: dict[str, Any],
) -> None:
    result = call(site, site["key"], "search", query="refund within 30 days", top_k=3)

    assert not result.is_error, text_of(result)
    found = result.structured_content
    passages = found["passages"]
    assert 1 <= len(passages) <= 3
    assert [p["rank"] for p in passages] == list(range(1, len(passages) + 1))
    assert passages[0]["document_id"] == site["handbook"]["id"]
    assert passages[0]["filename"] == "handbook.md" and "30 days" in passages[0]["snippet"]
    assert {"page_start", "score", "chunk_id", "kb_id"} <= passages[0].keys()
    # The same result as text, for hosts that read only the content blocks.
    assert json.loads(text_of(result)) == found


def test_ask_answers_with_markers_and_citations(site: dict[str, Any]) -> None:
    result = call(site, site["owner_token"], "ask", question=QUESTION)

    assert not result.is_error, text_of(result)
    answer = result.structured_content
    assert "30 days" in answer["answer"] and "[1]" in answer["answer"]
    assert answer["citations"][0]["n"] == 1
    assert answer["citations"][0]["document_id"] == site["handbook"]["id"]
    assert answer["turn_id"] and answer["session_id"]


def test_another_workspaces_knowledge_base_cannot_be_seen_or_searched(
    site: dict[str, Any],
) -> None:
    token = site["key"]
    by_id = call(
        site, token, "search", query="harbour gates", knowledge_base_ids=[site["rival_kb"]["id"]]
    )
    by_name = call(site, token, "ask", question="When do the harbour gates open?",
                   knowledge_base_ids=["harbour"])  # fmt: skip
    document = call(site, token, "get_document", document_id=site["plan"]["id"])
    everything = call(site, token, "search", query="harbour gates open at dawn", top_k=50)

    for refused in (by_id, by_name):
        assert refused.is_error and "knowledge_base_not_found" in text_of(refused)
    assert document.is_error and "document_not_found" in text_of(document)
    # Searching everything the caller can read never reaches the other workspace.
    assert not everything.is_error
    assert {p["kb_id"] for p in everything.structured_content["passages"]} <= {site["kb"]["id"]}
    # The other workspace's own owner finds the passage: it is there to leak.
    theirs = call(site, site["rival_token"], "search", query="harbour gates open at dawn")
    assert "ferries" in text_of(theirs)
    assert everything.structured_content["passages"]
    # Nothing of the other workspace's document comes back (a refusal echoes only the id
    # the caller sent).
    for result in (by_id, by_name, document, everything):
        assert "ferries" not in text_of(result) and "plan.md" not in text_of(result)
    assert site["plan"]["id"] not in text_of(everything)


def test_get_document_reads_the_text_in_windows(site: dict[str, Any]) -> None:
    whole = call(site, site["key"], "get_document", document_id=site["handbook"]["id"])
    assert not whole.is_error, text_of(whole)
    body = whole.structured_content
    assert body["document"]["filename"] == "handbook.md" and body["document"]["status"] == "ready"
    assert "Lyon warehouse" in body["text"] and "30 days" in body["text"]
    assert body["next_offset"] is None and body["length"] >= len(body["text"])

    pieces, offset = [], 0
    while offset is not None:
        window = call(site, site["key"], "get_document", document_id=site["handbook"]["id"],
                      offset=offset, max_chars=60).structured_content  # fmt: skip
        assert len(window["text"]) <= 60
        pieces.append(window["text"])
        offset = window["next_offset"]
    assert "".join(pieces) == body["text"]

    bad = call(site, site["key"], "get_document", document_id=site["handbook"]["id"], max_chars=0)
    assert bad.is_error and "invalid_parameter" in text_of(bad)


def test_without_a_valid_credential_the_endpoint_answers_401(site: dict[str, Any]) -> None:
    initialize: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    bare = requests.post(f"{site['url']}/mcp", json=initialize, headers=headers, timeout=30)
    forged = requests.post(
        f"{site['url']}/mcp",
        json=initialize,
        headers={**headers, "Authorization": "Bearer rlk_notarealkey000_" + "x" * 43},
        timeout=30,
    )

    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"] == 'Bearer realm="ragline"'
    assert forged.status_code == 401 and "invalid_token" in forged.headers["WWW-Authenticate"]
    with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces the 401 its own way
        with_session(site["url"], "not-a-token", lambda session: session.list_tools())


def test_get_and_delete_answer_405_at_once(site: dict[str, Any]) -> None:
    # Stateless: no standalone stream to hold open, no session to end.
    headers = {"Authorization": f"Bearer {site['key']}", "Accept": "text/event-stream"}
    opened = requests.get(f"{site['url']}/mcp", headers=headers, timeout=30)
    ended = requests.delete(f"{site['url']}/mcp", headers=headers, timeout=30)

    for response in (opened, ended):
        assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_a_limited_member_sees_only_what_is_granted(site: dict[str, Any]) -> None:
    owner, workspace = site["owner"], site["stack"].settings.default_workspace
    member = invite(owner, site["stack"], workspace, "intern", "viewer", limited=True)
    token = member.api.token

    listed = call(site, token, "list_knowledge_bases").structured_content
    refused = call(site, token, "search", query="refund", knowledge_base_ids=[site["kb"]["id"]])
    assert listed["knowledge_bases"] == []
    assert refused.is_error and "knowledge_base_not_found" in text_of(refused)

    granted = owner.put(
        f"/v1/knowledge-bases/{site['kb']['id']}/grants/{member.id}", json={"access": "read"}
    )
    assert granted.status_code == 200, granted.get_data(as_text=True)
    found = call(site, token, "search", query="refund within 30 days")
    assert not found.is_error, text_of(found)
    assert found.structured_content["passages"][0]["document_id"] == site["handbook"]["id"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"jsonrpc": "2.0"}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nope"}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
        b' "params": {"name": "search", "arguments": {"query": 7, "top_k": "x"}}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
        b' "params": {"name": "get_document", "arguments": {"document_id": "\\u0000"}}}',
        "\ud800".encode("utf-8", "surrogatepass"),
    ],
)
def test_bad_input_gets_no_5xx(site: dict[str, Any], body: bytes) -> None:
    response = requests.post(
        f"{site['url']}/mcp",
        data=body,
        headers={
            "Authorization": f"Bearer {site['key']}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
        timeout=30,
    )

    assert response.status_code < 500, response.text


def test_each_tool_call_leaves_one_audit_row_with_the_credential(site: dict[str, Any]) -> None:
    owner = site["owner"]

    def rows() -> list[dict[str, Any]]:
        response = owner.get("/v1/audit-logs", query_string={"action": "mcp.search"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return list((response.json or {})["audit_logs"])

    before = len(rows())
    result = call(
        site, site["key"], "search", query="refund", knowledge_base_ids=[site["kb"]["id"]]
    )
    assert not result.is_error, text_of(result)

    after = rows()
    assert len(after) == before + 1
    row = after[0]
    assert row["outcome"] == "succeeded" and row["credential"]["kind"] == "api_key"
    assert site["kb"]["id"] in row["target"]["ids"]


def test_an_ask_tool_calls_audit_row_commits_with_the_question_it_records(
    site: dict[str, Any],
) -> None:
    """The row is appended in the transaction that stores the question (its session and
    first turn), as for ``POST /v1/ask``: one commit holds both or neither."""
    database = site["stack"].database
    result = call(site, site["key"], "ask", question=QUESTION)
    assert not result.is_error, text_of(result)

    logged = database.one(
        "SELECT xmin::text, actor FROM audit_log WHERE action = 'mcp.ask' ORDER BY id DESC LIMIT 1"
    )
    assert logged is not None
    session_xmin = database.scalar(
        "SELECT xmin::text FROM chat_sessions WHERE principal = :p"
        " ORDER BY created_at DESC LIMIT 1",
        p=logged[1],
    )
    assert logged[0] == session_xmin
