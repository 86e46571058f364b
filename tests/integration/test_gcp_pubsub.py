"""PubSubPublisher against the real Pub/Sub emulator.

Covers the whole hop a pipeline message makes: published by :class:`PubSubPublisher`,
delivered by Pub/Sub (pull and push), turned into a CloudEvent by functions-framework.
"""

from __future__ import annotations

import base64
import http.server
import json
import queue
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from shared.errors import TransientError
from shared.gcp.pubsub import PubSubPublisher
from shared.models import DocumentLifecycleEvent, ParseRequested, message_attributes
from tests.support.pubsub_emulator import (
    PubSubEmulator,
    free_port,
    pubsub_emulator,  # noqa: F401  (module-scoped fixture)
)


@pytest.fixture(scope="module")
def admin(pubsub_emulator: PubSubEmulator) -> tuple[Any, Any]:  # noqa: F811
    """Real admin clients; created inside the fixture so they use the emulator."""
    return PublisherClient(), SubscriberClient()


@pytest.fixture()
def topic(pubsub_emulator: PubSubEmulator, admin) -> str:  # noqa: F811
    """A fresh topic (short name) in the emulator."""
    name = f"ragline-test-{uuid.uuid4().hex[:8]}"
    admin[0].create_topic(name=f"projects/{pubsub_emulator.project}/topics/{name}")
    return name


def pull_one(subscriber: SubscriberClient, subscription: str) -> Any:
    """Pull until one message arrives (the emulator may answer empty at first)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
        if response.received_messages:
            (received,) = response.received_messages
            subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
            return received.message
    raise AssertionError(f"no message on {subscription}")


def test_emulator_starts_quickly(pubsub_emulator: PubSubEmulator):  # noqa: F811
    # Informational bound: the module fixture should not dominate the suite's time.
    print(f"Pub/Sub emulator ready in {pubsub_emulator.startup_s:.1f} s")
    assert pubsub_emulator.startup_s < 30


def test_publish_round_trips_through_a_pull_subscription(pubsub_emulator, admin, topic):  # noqa: F811
    project = pubsub_emulator.project
    subscription = f"projects/{project}/subscriptions/{topic}-pull"
    admin[1].create_subscription(name=subscription, topic=f"projects/{project}/topics/{topic}")
    message = DocumentLifecycleEvent(
        document_id="00000000-0000-4000-8000-00000000d0c1",
        version_id="00000000-0000-4000-8000-0000000000e1",
        knowledge_base_id="00000000-0000-4000-8000-0000000000b1",
        status="ready",
    )

    # No client passed: created lazily, honouring PUBSUB_EMULATOR_HOST natively.
    publisher = PubSubPublisher(project)
    message_id = publisher.publish(topic, message)

    received = pull_one(admin[1], subscription)
    assert received.message_id == message_id
    assert DocumentLifecycleEvent.model_validate_json(received.data) == message
    assert dict(received.attributes) == {
        "type": "DocumentLifecycleEvent",
        "schema_version": "2",
        "version_id": "00000000-0000-4000-8000-0000000000e1",
        "document_id": "00000000-0000-4000-8000-00000000d0c1",
        "knowledge_base_id": "00000000-0000-4000-8000-0000000000b1",
    }


def test_publish_accepts_an_injected_client_and_full_topic_path(pubsub_emulator, admin, topic):  # noqa: F811
    project = pubsub_emulator.project
    subscription = f"projects/{project}/subscriptions/{topic}-pull"
    admin[1].create_subscription(name=subscription, topic=f"projects/{project}/topics/{topic}")

    publisher = PubSubPublisher(project, client=admin[0])
    publisher.publish(
        f"projects/{project}/topics/{topic}",
        ParseRequested(version_id="00000000-0000-4000-8000-000000000009"),
    )

    received = pull_one(admin[1], subscription)
    assert (
        ParseRequested.model_validate_json(received.data).version_id
        == "00000000-0000-4000-8000-000000000009"
    )
    assert received.attributes["type"] == "ParseRequested"


def test_publish_to_a_missing_topic_raises_transient_error(pubsub_emulator):  # noqa: F811
    publisher = PubSubPublisher(pubsub_emulator.project)

    with pytest.raises(TransientError, match="ragline-missing"):
        publisher.publish(
            "ragline-missing", ParseRequested(version_id="00000000-0000-4000-8000-00000000000a")
        )


def test_unreachable_broker_raises_transient_error_within_the_timeout(monkeypatch):
    # Needs no emulator: nothing listens on this port, so every attempt is UNAVAILABLE.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    publisher = PubSubPublisher("ragline-test", timeout_s=1.0)

    started = time.monotonic()
    with pytest.raises(TransientError):
        publisher.publish(
            "ragline-parse", ParseRequested(version_id="00000000-0000-4000-8000-00000000000a")
        )
    assert time.monotonic() - started < 10


class _PushReceiver(http.server.BaseHTTPRequestHandler):
    """Records push request bodies; 204 acknowledges them to Pub/Sub."""

    bodies: queue.Queue[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.put(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


@pytest.fixture()
def push_endpoint() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """A local HTTP endpoint for push subscriptions; yields its URL and the bodies."""
    bodies: queue.Queue[dict[str, Any]] = queue.Queue()
    handler = type("Receiver", (_PushReceiver,), {"bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/push", bodies
    finally:
        server.shutdown()
        server.server_close()


CLOUD_EVENT_TARGET = """
import base64
import json

import functions_framework

received = []


@functions_framework.cloud_event
def on_message(cloud_event):
    message = cloud_event.data["message"]
    received.append(
        {
            "type": cloud_event["type"],
            "source": cloud_event["source"],
            "id": cloud_event["id"],
            "data": json.loads(base64.b64decode(message["data"])),
            "attributes": message.get("attributes", {}),
        }
    )
"""


@pytest.fixture()
def cloud_event_app(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A functions-framework app serving a tiny CloudEvent function; yields (client, module)."""
    module_name = f"ragline_push_target_{uuid.uuid4().hex[:8]}"
    source = tmp_path / f"{module_name}.py"
    source.write_text(textwrap.dedent(CLOUD_EVENT_TARGET))
    app = functions_framework.create_app("on_message", str(source), "cloudevent")
    try:
        yield app.test_client(), sys.modules[module_name]
    finally:
        # create_app registers the module and its folder globally; undo that.
        sys.modules.pop(module_name, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def test_push_subscription_body_becomes_a_cloud_event(
    pubsub_emulator,  # noqa: F811
    admin,
    topic,
    push_endpoint,
    cloud_event_app,
):
    project = pubsub_emulator.project
    url, bodies = push_endpoint
    subscription = f"projects/{project}/subscriptions/{topic}-push"
    admin[1].create_subscription(
        name=subscription,
        topic=f"projects/{project}/topics/{topic}",
        push_config={"push_endpoint": url},
    )
    message = ParseRequested(version_id="00000000-0000-4000-8000-000000000042")

    message_id = PubSubPublisher(project).publish(topic, message)

    body = bodies.get(timeout=15)
    # The shape Pub/Sub pushes (and the local stack must imitate).
    assert body["subscription"] == subscription
    pushed = body["message"]
    assert {"data", "attributes", "messageId", "publishTime"} <= pushed.keys()
    assert pushed["messageId"] == message_id
    assert ParseRequested.model_validate_json(base64.b64decode(pushed["data"])) == message
    assert pushed["attributes"] == message_attributes(message)

    # functions-framework converts a raw push body into a Pub/Sub CloudEvent.
    client, module = cloud_event_app
    response = client.post(f"/projects/{project}/topics/{topic}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    (event,) = module.received
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event["source"] == f"//pubsub.googleapis.com/projects/{project}/topics/{topic}"
    assert event["id"] == message_id
    assert event["data"] == {
        "v": 1,
        "version_id": "00000000-0000-4000-8000-000000000042",
    }
    assert event["attributes"] == message_attributes(message)
