"""Poison and expired messages are acknowledged, never retried forever."""

from __future__ import annotations

import base64
import datetime as dt
import json

from cloudevents.http import CloudEvent
from werkzeug.test import Client

from scripts.localstack.stack import LocalStack
from shared.models import ParseRequested
from tests.support.api import Api


def _delivered_to_dead_letter(stack: LocalStack) -> bool:
    topic = stack.settings.topic_dead_letter
    return any(published_topic == topic for published_topic, _ in stack.bus.published)


def test_malformed_pipeline_messages_are_acknowledged_once(clean_stack: LocalStack) -> None:
    settings = clean_stack.settings
    for topic in (settings.topic_parse, settings.topic_chunk, settings.topic_index):
        clean_stack.bus.publish_raw(topic, b"not json at all", {})
        clean_stack.bus.publish_raw(topic, json.dumps({"v": 1}).encode(), {})
        clean_stack.bus.publish_raw(topic, json.dumps({"version_id": "nope"}).encode(), {})
    clean_stack.wait_idle()

    assert not _delivered_to_dead_letter(clean_stack), "poison was acknowledged, not retried"


def test_malformed_embed_task_is_acknowledged(clean_stack: LocalStack) -> None:
    client = Client(clean_stack.host.apps["embed"])
    response = client.post("/", data=b"{broken", content_type="application/json")
    assert response.status_code == 200
    assert response.json == {"status": "ignored", "reason": "malformed task"}


def test_malformed_storage_events_are_acknowledged(clean_stack: LocalStack) -> None:
    assert clean_stack.host.storage_event("finalized", {"bucket": "", "name": ""}) == 200
    resource = {"bucket": clean_stack.settings.upload_bucket, "name": "no-folder.txt"}
    assert clean_stack.host.storage_event("finalized", resource) == 200
    assert clean_stack.database.scalar("SELECT count(*) FROM documents") == 0


def test_an_event_older_than_the_maximum_age_fails_the_version(clean_stack: LocalStack) -> None:
    import functions.parse

    api = Api(clean_stack)
    kb = api.create_kb("expired")
    clean_stack.bus.options.max_attempts = 1  # let the first delivery fail and be dropped
    accepted = api.upload(kb["id"], "old.md", b"# Old\n\nAn old message.")
    clean_stack.wait_idle()
    clean_stack.bus.options.max_attempts = 4

    payload = ParseRequested(version_id=accepted["version_id"]).model_dump_json().encode()
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    event = CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/p/topics/ragline-parse",
            "time": old.isoformat(),
        },
        {"message": {"data": base64.b64encode(payload).decode(), "messageId": "1"}},
    )
    clean_stack.database.run(
        "UPDATE document_versions SET status = 'received' WHERE id = CAST(:v AS uuid)",
        v=accepted["version_id"],
    )
    functions.parse.parse(event)

    version = api.document(accepted["document_id"])["versions"][0]
    assert version["status"] == "failed"
    assert version["error"]["code"] == "event_expired"
