"""Lifecycle events go through the outbox: written with the change, published by the relay."""

from __future__ import annotations

import pytest

from scripts.localstack.stack import LocalStack
from shared.errors import TransientError
from shared.models import DocumentLifecycleEvent, Message, message_attributes
from shared.pipeline.outbox import record_version_event, relay_outbox
from shared.pipeline.removal import delete_document
from shared.pipeline.steps import (
    chunk_version,
    embed_batch,
    fail_and_announce,
    index_version,
    parse_version,
)
from shared.pipeline.versions import IN_PROGRESS, transition
from shared.store.outbox import OutboxEvent, events_of_document, unpublished_count
from tests.support.api import Api
from tests.support.pipeline import TEXT_V1, TEXT_V2, Recorder, store_version


def _lifecycle(recorder: Recorder) -> list[DocumentLifecycleEvent]:
    return [m for _, m in recorder.messages if isinstance(m, DocumentLifecycleEvent)]


def _to_ready(stack: LocalStack, recorder: Recorder, version_id: str) -> None:
    rt = stack.runtime
    assert parse_version(rt, version_id) and chunk_version(rt, version_id)
    for task in recorder.tasks_for(version_id):
        embed_batch(rt, task)
    assert index_version(rt, version_id)


def _types(events: list[OutboxEvent]) -> list[tuple[str, str | None]]:
    return [(event.type, event.version_id) for event in events]


def test_each_lifecycle_change_writes_one_event_that_is_published_with_its_id(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    db = clean_stack.database
    kb = Api(clean_stack).create_kb("outbox")
    document_id, v1 = store_version(clean_stack, kb["id"], TEXT_V1)
    _to_ready(clean_stack, recorder, v1)
    _, v2 = store_version(clean_stack, kb["id"], TEXT_V2)
    _to_ready(clean_stack, recorder, v2)
    _, v3 = store_version(clean_stack, kb["id"], TEXT_V1 + "three")
    assert fail_and_announce(clean_stack.runtime, v3, "bad", "it went wrong")
    assert not fail_and_announce(clean_stack.runtime, v3, "bad", "again"), "failed once only"

    events = events_of_document(db, document_id)
    assert _types(events) == [
        ("version.ready", v1),
        ("version.ready", v2),
        ("version.superseded", v1),
        ("version.failed", v3),
    ]
    assert all(event.published_at is not None for event in events)
    published = _lifecycle(recorder)
    assert [m.event_id for m in published] == [event.id for event in events]
    # Consumers dedupe on the id, also sent as a Pub/Sub attribute.
    assert message_attributes(published[0])["event_id"] == events[0].id
    assert message_attributes(published[0])["event_type"] == "version.ready"
    failed = published[-1]
    assert (failed.status, failed.error, failed.event_type) == (
        "failed",
        "it went wrong",
        "version.failed",
    )
    assert failed.data["error_code"] == "bad"
    assert failed.workspace_id and failed.knowledge_base_id == kb["id"]

    assert delete_document(clean_stack.runtime, document_id)
    deleted = events_of_document(db, document_id)[-1]
    assert (deleted.type, deleted.kb_id, deleted.published_at is not None) == (
        "document.deleted",
        kb["id"],
        True,
    )
    assert _lifecycle(recorder)[-1].event_id == deleted.id
    assert len(events_of_document(db, document_id)) == 5


def test_a_rolled_back_change_leaves_no_event(clean_stack: LocalStack, recorder: Recorder) -> None:
    kb = Api(clean_stack).create_kb("rollback")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)

    with pytest.raises(RuntimeError), clean_stack.database.transaction() as session:
        assert transition(session, version, "failed", IN_PROGRESS, error="x") is not None
        assert len(events_of_document(session, document_id)) == 1, "written in the transaction"
        raise RuntimeError("the change is abandoned")

    assert events_of_document(clean_stack.database, document_id) == []


class BrokenPublisher:
    """A broker that is down."""

    def __init__(self) -> None:
        self.calls = 0

    def publish(self, topic: str, message: Message) -> str:
        # Only lifecycle events count: the bucket notifier may publish a parse meanwhile.
        if isinstance(message, DocumentLifecycleEvent):
            self.calls += 1
        raise TransientError("the broker is unavailable")


def test_an_event_whose_publish_failed_after_commit_is_published_by_the_sweeper(
    clean_stack: LocalStack, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = clean_stack.runtime
    monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update={"outbox_retry_base_s": 0}))
    kb = Api(clean_stack).create_kb("retry")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    broken = BrokenPublisher()
    rt.publisher = broken

    assert fail_and_announce(rt, version, "bad", "broken input")

    assert broken.calls == 1, "the relay ran after the commit"
    [event] = events_of_document(clean_stack.database, document_id)
    assert event.published_at is None and event.attempts == 1
    assert "broker is unavailable" in (event.last_error or "")
    assert _lifecycle(recorder) == []

    recorder.install()  # the broker is back
    report = clean_stack.sweep()

    assert report["published"] == [event.id]
    assert [m.event_id for m in _lifecycle(recorder)] == [event.id]
    [event] = events_of_document(clean_stack.database, document_id)
    assert event.published_at is not None and event.attempts == 2
    assert unpublished_count(clean_stack.database) == 0


class Crash(BaseException):
    """The process stops (not an error the relay could handle)."""


class CrashingPublisher(Recorder):
    """Publishes, and the process stops right after the ``crash_after``-th lifecycle event."""

    def __init__(self, crash_after: int) -> None:
        super().__init__()
        self.crash_after = crash_after

    def publish(self, topic: str, message: Message) -> str:
        message_id = super().publish(topic, message)
        # Only lifecycle events count: the bucket notifier may publish a parse meanwhile.
        if (
            isinstance(message, DocumentLifecycleEvent)
            and len(_lifecycle(self)) == self.crash_after
        ):
            raise Crash
        return message_id


def test_a_relay_killed_mid_batch_publishes_every_event_at_least_once(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("crash")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    with clean_stack.database.transaction() as session:
        written = [record_version_event(session, "version.ready", version, n=n) for n in range(5)]
    crashing = CrashingPublisher(crash_after=3)
    rt.publisher = crashing

    with pytest.raises(Crash):
        relay_outbox(rt)

    assert unpublished_count(clean_stack.database) == 5, "nothing was marked published"
    rt.publisher = recorder
    assert relay_outbox(rt).published == written
    assert unpublished_count(clean_stack.database) == 0

    deliveries = _lifecycle(crashing) + _lifecycle(recorder)
    assert len(deliveries) == 8, "the first three were published twice"
    seen: dict[str, DocumentLifecycleEvent] = {}
    for message in deliveries:  # a consumer deduping on the event id
        assert message.event_id is not None
        seen.setdefault(message.event_id, message)
    assert list(seen) == written
    assert [m.data["n"] for m in seen.values()] == [0, 1, 2, 3, 4]
    assert all(m.document_id == document_id for m in seen.values())


def test_the_sweeper_prunes_only_events_published_before_the_retention(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    db = clean_stack.database
    kb = Api(clean_stack).create_kb("prune")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    with db.transaction() as session:
        old, recent, waiting = (
            record_version_event(session, "version.ready", version, n=n) for n in range(3)
        )
    assert relay_outbox(clean_stack.runtime, limit=2).published == [old, recent]
    db.run(
        "UPDATE outbox SET published_at = now() - interval '8 days' WHERE id = CAST(:id AS uuid)",
        id=old,
    )
    db.run(
        "UPDATE outbox SET next_attempt_at = now() + interval '1 hour'"
        " WHERE id = CAST(:id AS uuid)",
        id=waiting,
    )

    clean_stack.sweep()

    assert [event.id for event in events_of_document(db, document_id)] == [recent, waiting]
