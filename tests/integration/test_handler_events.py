"""The function targets, driven by the platform's own request shapes.

Each test loads a recorded sample event from ``tests/events/`` (a GCS CloudEvent as
Eventarc delivers it, a Pub/Sub push body, a Cloud Tasks HTTP request), fills in its
ids and sends it to the real ``main.py`` target hosted by functions-framework (the local
stack's :class:`~scripts.localstack.functions_host.FunctionsHost`), then checks the
effect in the database and the buckets. The ``recorder`` fixture keeps the messages
and tasks a step sends, so each test decides what is delivered next.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from scripts.localstack.stack import LocalStack
from shared.models import EmbedTask, IndexRequested, Message, ParseRequested, message_attributes
from shared.paths import parsed_object_name
from tests.support.pipeline import TEXT_V1, Recorder, version_status

EVENTS = Path(__file__).resolve().parents[1] / "events"
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def fill(template: Any, values: dict[str, Any]) -> Any:
    """``template`` with its ``${name}`` placeholders replaced by ``values``.

    A string that is exactly one placeholder becomes the value itself (so a number
    stays a number and a dict a dict); a placeholder inside a longer string is
    replaced by the value's text. A placeholder with no value is an error, so a sample
    cannot silently reach a handler half-filled.
    """
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)
    return template


def load_event(sample_name: str, /, **values: Any) -> dict[str, Any]:
    """The sample event ``tests/events/<sample_name>.json`` with its placeholders filled."""
    sample = json.loads((EVENTS / f"{sample_name}.json").read_text())
    sample.pop("_comment", None)
    defaults = {"event_id": str(uuid.uuid4()), "time": _now(), "message_id": "17253919836421"}
    return fill(sample, {**defaults, **values})


def _now(offset_s: float = 0.0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def send_storage_event(stack: LocalStack, event: dict[str, Any]) -> TestResponse:
    """POST a GCS CloudEvent to ``ingest`` in binary content mode, as Eventarc does."""
    headers = {f"ce-{key}": value for key, value in event["attributes"].items()}
    headers["Content-Type"] = event["attributes"]["datacontenttype"]
    client = stack.host.apps["ingest"].test_client()
    return client.post("/", data=json.dumps(event["data"]), headers=headers)


def send_push(
    stack: LocalStack,
    target: str,
    message: Message | bytes,
    *,
    topic: str,
    attributes: dict[str, str] | None = None,
    delivery_attempt: int = 1,
    time: str | None = None,
) -> TestResponse:
    """POST a Pub/Sub push body carrying ``message`` to function ``target``."""
    raw = message if isinstance(message, bytes) else message.model_dump_json().encode()
    if attributes is None:
        attributes = message_attributes(message) if isinstance(message, Message) else {}
    event = load_event(
        "pubsub_push",
        project=stack.settings.project,
        topic=topic,
        data=base64.b64encode(raw).decode(),
        attributes=attributes,
        delivery_attempt=delivery_attempt,
        **({"time": time} if time else {}),
    )
    client = stack.host.apps[target].test_client()
    return client.post(event["path"], json=event["body"])


def send_task(
    stack: LocalStack, task_name: str, task: EmbedTask | None, *, retry_count: int = 0
) -> TestResponse:
    """POST a Cloud Tasks HTTP request for ``task`` (None: a malformed body) to ``embed``."""
    request = load_event(
        "cloud_tasks_embed",
        queue=stack.settings.tasks_queue,
        task_name=task_name,
        retry_count=retry_count,
        eta=_now(),
        version_id=task.version_id if task else "not-a-uuid",
        first_ordinal=task.first_ordinal if task else -1,
        last_ordinal=task.last_ordinal if task else -1,
    )
    client = stack.host.apps["embed"].test_client()
    return client.post(request["path"], json=request["body"], headers=request["headers"])


def test_every_sample_event_is_filled_completely() -> None:
    # Each sample names exactly the placeholders the helpers fill, and nothing else is
    # left as a literal `${...}` in what a handler receives.
    samples = sorted(EVENTS.glob("*.json"))
    assert {path.stem for path in samples} >= {
        "gcs_object_finalized",
        "gcs_object_deleted",
        "pubsub_push",
        "cloud_tasks_embed",
    }
    for path in samples:
        names = set(PLACEHOLDER.findall(path.read_text()))
        filled = load_event(path.stem, **{name: f"<{name}>" for name in names})
        assert "${" not in json.dumps(filled), path.name
    with pytest.raises(KeyError):
        load_event("pubsub_push")  # no data, no topic: refused, not sent half-filled


def _messages(recorder: Recorder, kind: type[Message], version_id: str) -> list[Message]:
    return [
        message
        for _, message in recorder.messages
        if isinstance(message, kind) and getattr(message, "version_id", None) == version_id
    ]


def _upload(stack: LocalStack, name: str, text: str) -> dict[str, Any]:
    info = stack.objects.upload_bytes(stack.settings.upload_bucket, name, text.encode())
    return {
        "bucket": info.bucket,
        "name": info.name,
        "generation": str(info.generation),
        "size": str(info.size),
        "md5_hash": base64.b64encode(bytes.fromhex(info.md5_hex or "")).decode(),
        "content_type": "text/markdown",
        "metadata": {"team": "finance"},
    }


def _version_of(stack: LocalStack, bucket: str, name: str) -> str:
    return str(
        stack.database.scalar(
            "SELECT id::text FROM document_versions WHERE object_bucket = :b AND object_name = :n",
            b=bucket,
            n=name,
        )
    )


def test_a_finalized_object_goes_through_every_target_to_ready(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    settings = stack.settings
    obj = _upload(stack, "default/handler-kb/reports/report.md", TEXT_V1)

    response = send_storage_event(stack, load_event("gcs_object_finalized", **obj))
    assert response.status_code < 300, response.get_data(as_text=True)
    version_id = _version_of(stack, obj["bucket"], obj["name"])
    assert (
        stack.database.scalar(
            "SELECT count(*) FROM documents d JOIN knowledge_bases k ON k.id = d.kb_id"
            " WHERE k.name = 'handler-kb' AND d.source_key = 'reports/report.md'"
        )
        == 1
    )
    assert _messages(recorder, ParseRequested, version_id), "ingest published parse"

    # parse: the Pub/Sub push of the message ingest published.
    parse = ParseRequested(version_id=version_id)
    assert send_push(stack, "parse", parse, topic=settings.topic_parse).status_code < 300
    assert stack.objects.stat(settings.work_bucket, parsed_object_name(version_id)) is not None
    assert version_status(stack, version_id) != "received"
    assert any(topic == settings.topic_chunk for topic, _ in recorder.messages)

    # chunk: rows written, embed tasks enqueued.
    assert send_push(stack, "chunk", parse, topic=settings.topic_chunk).status_code < 300
    chunks = stack.database.scalar(
        "SELECT count(*) FROM chunks WHERE version_id = CAST(:v AS uuid)", v=version_id
    )
    assert chunks > 0
    tasks = [(name, task) for name, task in recorder.tasks.items() if task.version_id == version_id]
    assert tasks, "chunk enqueued embed tasks"

    # embed: each Cloud Tasks request embeds its batch; the last one asks for index.
    for task_name, task in tasks:
        response = send_task(stack, task_name, task)
        assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert (
        stack.database.scalar(
            "SELECT count(*) FROM chunks WHERE version_id = CAST(:v AS uuid)"
            " AND embedding IS NOT NULL",
            v=version_id,
        )
        == chunks
    )
    assert _messages(recorder, IndexRequested, version_id)

    # index: the version becomes the document's active one.
    index = IndexRequested(version_id=version_id)
    assert send_push(stack, "index", index, topic=settings.topic_index).status_code < 300
    assert version_status(stack, version_id) == "ready"
    assert (
        stack.database.scalar(
            "SELECT active_version_id::text FROM documents d JOIN document_versions v"
            " ON v.document_id = d.id WHERE v.id = CAST(:v AS uuid)",
            v=version_id,
        )
        == version_id
    )

    # The same finalize event again (at-least-once delivery) creates nothing new.
    assert send_storage_event(stack, load_event("gcs_object_finalized", **obj)).status_code < 300
    assert stack.database.scalar("SELECT count(*) FROM document_versions") == 1

    # object.deleted once the object is gone: the document and its chunks go too.
    stack.objects.delete(obj["bucket"], obj["name"])
    response = send_storage_event(stack, load_event("gcs_object_deleted", **obj))
    assert response.status_code < 300
    assert stack.database.scalar("SELECT count(*) FROM documents") == 0
    assert stack.database.scalar("SELECT count(*) FROM chunks") == 0


def test_a_deleted_event_for_a_replaced_object_keeps_the_document(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    # GCS reports `deleted` for the old generation when an object is overwritten.
    stack = clean_stack
    obj = _upload(stack, "default/handler-kb/notes.md", TEXT_V1)
    assert send_storage_event(stack, load_event("gcs_object_finalized", **obj)).status_code < 300
    replaced = _upload(stack, "default/handler-kb/notes.md", TEXT_V1 + " More.")
    assert replaced["generation"] != obj["generation"]
    assert send_storage_event(stack, load_event("gcs_object_deleted", **obj)).status_code < 300
    assert stack.database.scalar("SELECT count(*) FROM documents") == 1


def test_malformed_storage_events_are_acknowledged(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    # No real object behind these events, so the stack's bucket notifier adds nothing.
    stack = clean_stack
    ghost = {
        "bucket": stack.settings.upload_bucket,
        "name": "default/handler-kb/ghost.md",
        "generation": "1712345678901234",
        "size": "12",
        "md5_hash": "XUFAKrxLKna5cZ2REBfFkg==",
        "content_type": "text/markdown",
        "metadata": {},
    }
    broken = load_event("gcs_object_finalized", **ghost)
    del broken["data"]["name"]
    assert send_storage_event(stack, broken).status_code < 300, "a poison event is not retried"
    outside = load_event("gcs_object_finalized", **{**ghost, "name": "no-folder.md"})
    assert send_storage_event(stack, outside).status_code < 300
    folder = load_event("gcs_object_finalized", **{**ghost, "name": "default/handler-kb/sub/"})
    assert send_storage_event(stack, folder).status_code < 300
    assert stack.database.scalar("SELECT count(*) FROM document_versions") == 0
    assert not recorder.messages


def _received_version(stack: LocalStack) -> str:
    obj = _upload(stack, "default/handler-kb/report.md", TEXT_V1)
    assert send_storage_event(stack, load_event("gcs_object_finalized", **obj)).status_code < 300
    return _version_of(stack, obj["bucket"], obj["name"])


def test_a_malformed_push_message_is_acknowledged_and_changes_nothing(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    version_id = _received_version(stack)
    for raw in (b"not json", b'{"version_id": "not-a-uuid"}', b"{}"):
        response = send_push(stack, "parse", raw, topic=stack.settings.topic_parse)
        assert response.status_code < 300, raw
    assert version_status(stack, version_id) == "received"
    assert stack.objects.stat(stack.settings.work_bucket, parsed_object_name(version_id)) is None


def test_an_expired_push_fails_the_version_instead_of_retrying(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    version_id = _received_version(stack)
    old = _now(-(stack.settings.max_event_age_s + 3600))
    response = send_push(
        stack,
        "parse",
        ParseRequested(version_id=version_id),
        topic=stack.settings.topic_parse,
        time=old,
    )
    assert response.status_code < 300
    assert version_status(stack, version_id) == "failed"
    assert (
        stack.database.scalar(
            "SELECT error_code FROM document_versions WHERE id = CAST(:v AS uuid)", v=version_id
        )
        == "event_expired"
    )


def test_a_dead_lettered_message_fails_its_version(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    version_id = _received_version(stack)
    message = ParseRequested(version_id=version_id)
    # Pub/Sub forwards the original message to the dead-letter topic with its own
    # attributes plus the dead-letter ones.
    attributes = {
        **message_attributes(message),
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceSubscription": f"{stack.settings.topic_parse}-push",
    }
    response = send_push(
        stack,
        "dead_letter",
        message,
        topic=stack.settings.topic_dead_letter,
        attributes=attributes,
    )
    assert response.status_code < 300
    assert version_status(stack, version_id) == "failed"


def test_a_malformed_cloud_task_is_acknowledged(clean_stack: LocalStack) -> None:
    response = send_task(clean_stack, "embed-broken", None)
    assert response.status_code == 200, "Cloud Tasks retries any non-2xx"
    assert response.get_json()["status"] == "ignored"


def test_the_sample_task_request_is_what_the_local_queue_sends() -> None:
    # The local task queue and the sample must agree on the headers the handler reads.
    sample = json.loads((EVENTS / "cloud_tasks_embed.json").read_text())
    source = (Path(__file__).resolve().parents[2] / "scripts/localstack/bus.py").read_text()
    for header in ("X-CloudTasks-TaskName", "X-CloudTasks-TaskRetryCount"):
        assert header in sample["headers"] and header in source
    body = copy.deepcopy(sample["body"])
    body.update(version_id=str(uuid.uuid4()), first_ordinal=0, last_ordinal=3)
    assert EmbedTask.model_validate(body).last_ordinal == 3
