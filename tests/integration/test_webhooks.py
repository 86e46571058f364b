"""Webhooks: lifecycle events reach a receiver on the loopback interface, signed, retried,
and a webhook that keeps failing is disabled until an admin enables it again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.models import DocumentLifecycleEvent
from shared.net.client import SafeHttpClient
from shared.net.guard import UrlGuard
from shared.pipeline.webhooks import fan_out
from shared.webhook_signature import verify_signature
from tests.support.api import Api
from tests.support.outbound import allow_loopback


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 answering the statuses it is given, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: BaseHTTPRequestHandler) -> int:
        body = request.rfile.read(int(request.headers.get("Content-Length", 0)))
        with self.lock:
            self.requests.append(Received(request.path, dict(request.headers.items()), body))
            return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status = state.answer(self)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ragline"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def loopback_allowed(clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """The stack may deliver to 127.0.0.1 (the test-only allow-list), failing after 3."""
    allow_loopback(clean_stack, monkeypatch, webhook_max_failures=3)
    return clean_stack


def _register(api: Api, kb_id: str, url: str, events: list[str]) -> dict[str, Any]:
    response = api.post(
        f"/v1/knowledge-bases/{kb_id}/webhooks", json={"url": url, "events": events}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.json or {})


def _ingest(stack: LocalStack, api: Api, kb_id: str, text: str = "Apples are red.") -> str:
    accepted = api.upload(kb_id, "fruit.md", f"# Fruit\n\n{text}\n".encode())
    stack.wait_idle()
    assert api.document(accepted["document_id"])["status"] == "ready"
    return str(accepted["document_id"])


def _deliveries(api: Api, webhook_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(reversed((response.json or {})["deliveries"]))  # oldest first


def test_an_event_is_delivered_signed_and_once(
    loopback_allowed: LocalStack, receiver: Receiver
) -> None:
    stack = loopback_allowed
    api = Api(stack)
    kb = api.create_kb("hooks")
    hook = _register(api, kb["id"], receiver.url, ["version.ready", "document.deleted"])
    secret = hook["secret"]
    assert secret.startswith("whsec_") and hook["enabled"] is True

    document_id = _ingest(stack, api, kb["id"])

    [request] = receiver.requests
    assert request.path == "/hooks/ragline"
    verify_signature(secret, request.headers, request.body)
    event = json.loads(request.body)
    assert (event["event_type"], event["document_id"], event["knowledge_base_id"]) == (
        "version.ready",
        document_id,
        kb["id"],
    )
    assert request.headers["Ragline-Event-Id"] == event["event_id"]
    [delivery] = _deliveries(api, hook["id"])
    assert (delivery["status"], delivery["response_code"], delivery["attempt"]) == (
        "delivered",
        200,
        1,
    )
    # The event arrives again (at least once): the same task name, so no second delivery.
    assert fan_out(stack.runtime, DocumentLifecycleEvent.model_validate(event)) == 0
    stack.wait_idle()
    assert len(receiver.requests) == 1

    # The secret is shown once: never in a listing.
    listed = api.get(f"/v1/knowledge-bases/{kb['id']}/webhooks").json or {}
    assert [w["id"] for w in listed["webhooks"]] == [hook["id"]]
    assert "secret" not in json.dumps(listed)

    assert api.delete(f"/v1/documents/{document_id}").status_code == 204
    stack.wait_idle()
    assert [json.loads(r.body)["event_type"] for r in receiver.requests] == [
        "version.ready",
        "document.deleted",
    ]


def test_a_failed_delivery_is_retried_until_delivered(
    loopback_allowed: LocalStack, receiver: Receiver
) -> None:
    stack = loopback_allowed
    api = Api(stack)
    kb = api.create_kb("retried")
    hook = _register(api, kb["id"], receiver.url, ["version.ready"])
    receiver.statuses = [500]

    _ingest(stack, api, kb["id"])

    assert len(receiver.requests) == 2
    assert len({r.headers["Ragline-Event-Id"] for r in receiver.requests}) == 1
    for request in receiver.requests:
        verify_signature(hook["secret"], request.headers, request.body)
    log = _deliveries(api, hook["id"])
    assert [(d["attempt"], d["status"], d["response_code"]) for d in log] == [
        (1, "failed", 500),
        (2, "delivered", 200),
    ]
    state = api.get(f"/v1/knowledge-bases/{kb['id']}/webhooks/{hook['id']}").json or {}
    assert (state["enabled"], state["consecutive_failures"]) == (True, 0), "success resets"


def test_a_webhook_failing_n_times_in_a_row_is_disabled_until_enabled_by_hand(
    loopback_allowed: LocalStack, receiver: Receiver
) -> None:
    stack = loopback_allowed
    api = Api(stack)
    kb = api.create_kb("failing")
    hook = _register(api, kb["id"], receiver.url, ["version.ready"])
    receiver.statuses = [500] * 10
    path = f"/v1/knowledge-bases/{kb['id']}/webhooks/{hook['id']}"

    _ingest(stack, api, kb["id"])

    assert len(receiver.requests) == 3, "no attempt after the third failure"
    disabled = api.get(path).json or {}
    assert disabled["enabled"] is False and disabled["consecutive_failures"] == 3
    assert "3 deliveries failed in a row" in disabled["disabled_reason"]
    assert [d["status"] for d in _deliveries(api, hook["id"])] == ["failed"] * 3

    # Disabled: a new event is not delivered.
    _ingest(stack, api, kb["id"], "Pears are green.")
    assert len(receiver.requests) == 3

    enabled = api.patch(path, json={"enabled": True})
    assert enabled.status_code == 200, enabled.get_data(as_text=True)
    assert (enabled.json or {})["enabled"] is True
    assert (enabled.json or {})["disabled_reason"] is None
    receiver.statuses = []
    _ingest(stack, api, kb["id"], "Plums are purple.")
    assert len(receiver.requests) == 4
    assert _deliveries(api, hook["id"])[-1]["status"] == "delivered"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/computeMetadata/v1/",
        "http://metadata.google.internal/",
        "http://127.0.0.1:9/",  # loopback: only the test-only allow-list admits it
        "http://[::ffff:10.0.0.1]/",
        "http://2130706433/",
        "ftp://example.com/",
    ],
)
def test_an_unsafe_url_is_refused_at_registration(clean_stack: LocalStack, url: str) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("unsafe")

    response = api.post(
        f"/v1/knowledge-bases/{kb['id']}/webhooks", json={"url": url, "events": ["version.ready"]}
    )

    assert response.status_code == 400, response.get_data(as_text=True)
    assert (response.json or {})["error"]["code"] == "unsafe_url"
    assert (api.get(f"/v1/knowledge-bases/{kb['id']}/webhooks").json or {})["webhooks"] == []


def test_a_url_unsafe_at_delivery_time_is_refused_without_a_connection(
    loopback_allowed: LocalStack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = loopback_allowed
    api = Api(stack)
    kb = api.create_kb("rebound")
    hook = _register(api, kb["id"], receiver.url, ["version.ready"])
    # From now on loopback is not allowed (as in production): the delivery re-checks.
    monkeypatch.setattr(stack.runtime, "outbound", SafeHttpClient(UrlGuard()))

    _ingest(stack, api, kb["id"])

    assert receiver.requests == []
    [delivery] = _deliveries(api, hook["id"])
    assert delivery["status"] == "refused" and "127.0.0.1" in delivery["error"]


def test_only_admins_manage_webhooks_and_unknown_events_are_refused(
    clean_stack: LocalStack,
) -> None:
    from tests.support.api import token_for

    api = Api(clean_stack)
    kb = api.create_kb("admins")
    unknown = api.post(
        f"/v1/knowledge-bases/{kb['id']}/webhooks",
        json={"url": "https://example.com/hook", "events": ["version.exploded"]},
    )
    assert unknown.status_code == 400
    viewer = Api(
        clean_stack, token_for(clean_stack, "viewer-1", workspace="default", role="viewer")
    )
    assert viewer.get(f"/v1/knowledge-bases/{kb['id']}/webhooks").status_code == 403
