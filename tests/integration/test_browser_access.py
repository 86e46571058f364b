"""What a browser on another origin needs: CORS, and tickets for EventSource streams."""

from __future__ import annotations

from werkzeug.test import Client

from scripts.localstack.stack import LocalStack
from tests.conftest import FRONTEND
from tests.support.api import Api, body_of

ELSEWHERE = "http://127.0.0.1:9999"
TEXT = "The refund window is thirty days from delivery."


def test_preflight_and_responses_carry_cors_for_configured_origins(stack: LocalStack) -> None:
    client = Client(stack.app)
    preflight = {
        "Origin": FRONTEND,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    for path in ("/v1/knowledge-bases", "/v1/ask", "/v1/me"):
        allowed = client.options(path, headers=preflight)
        assert allowed.status_code == 204, (path, allowed.get_data(as_text=True))
        assert allowed.headers["Access-Control-Allow-Origin"] == FRONTEND
        assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
        assert "OPTIONS" in allowed.headers["Access-Control-Allow-Methods"]
        refused = client.options(path, headers={**preflight, "Origin": ELSEWHERE})
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers

    # A path no route serves passes its preflight, so the page reads the 404 that follows.
    unrouted = client.options("/v1/no-such-thing", headers=preflight)
    assert unrouted.status_code == 204
    assert unrouted.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    odd = client.options(
        "/v1/no-such-thing", headers={**preflight, "Access-Control-Request-Method": "GET\tX"}
    )
    assert odd.status_code == 400 and "Access-Control-Allow-Methods" not in odd.headers

    api = Api(stack)
    listed = api.get("/v1/knowledge-bases", headers={"Origin": FRONTEND})
    assert listed.status_code == 200
    assert listed.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "Origin" in listed.headers["Vary"]
    # Errors are readable too (a frontend shows the 401's code).
    unauthenticated = client.get("/v1/knowledge-bases", headers={"Origin": FRONTEND})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["Access-Control-Allow-Origin"] == FRONTEND
    other = api.get("/v1/knowledge-bases", headers={"Origin": ELSEWHERE})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_stream_ticket_opens_one_stream_once(clean_stack: LocalStack) -> None:
    stack = clean_stack
    api = Api(stack)
    kb = api.create_kb("support")
    document = api.ingest(kb["id"], "policy.txt", TEXT.encode())
    client = Client(stack.app)
    events_path = f"/v1/documents/{document['id']}/events"

    def ticket(path: str) -> str:
        issued = api.post("/v1/stream-tickets", json={"path": path})
        assert issued.status_code == 201, issued.get_data(as_text=True)
        return str(body_of(issued)["ticket"])

    # As EventSource does: a GET with no Authorization header.
    first = ticket(events_path)
    opened = client.get(events_path, query_string={"ticket": first})
    assert opened.status_code == 200, opened.get_data(as_text=True)
    assert "ready" in opened.get_data(as_text=True)
    reused = client.get(events_path, query_string={"ticket": first})
    assert reused.status_code == 401 and body_of(reused)["error"]["code"] == "ticket_invalid"

    # A ticket opens the path it was issued for only, and only streams get tickets.
    other = ticket("/v1/ask/stream")
    wrong = client.get(events_path, query_string={"ticket": other})
    assert wrong.status_code == 401
    assert api.post("/v1/stream-tickets", json={"path": "/v1/knowledge-bases"}).status_code == 400

    asked = ticket("/v1/ask/stream")
    stream = client.get(
        "/v1/ask/stream",
        query_string={"ticket": asked, "knowledge_base_id": kb["id"], "q": "refund window?"},
    )
    assert stream.status_code == 200
    assert "event: done" in stream.get_data(as_text=True)

    expired = ticket(events_path)
    stack.database.run("UPDATE stream_tickets SET expires_at = now() - interval '1 second'")
    late = client.get(events_path, query_string={"ticket": expired})
    assert late.status_code == 401
    # The table keeps hashes: no stored value is a ticket.
    pending = ticket(events_path)
    stored = stack.database.scalars("SELECT encode(ticket_sha256, 'hex') FROM stream_tickets")
    assert stored and pending not in stored
    for value in stored:
        assert client.get(events_path, query_string={"ticket": value}).status_code == 401
