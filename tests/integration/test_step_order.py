"""Pipeline steps driven one by one, in orders the bus may deliver them.

The transports are replaced by recorders so each test decides exactly which message
is delivered when; the steps, the database and storage are the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared import events, storage
from shared.models import EmbedTask, Message
from shared.pipeline.ingest import ensure_document, register_object
from shared.pipeline.steps import chunk_version, embed_batch, index_version, parse_version
from tests.support.api import Api, all_chunks, visible_chunks


class Recorder:
    """Records published messages and enqueued tasks instead of delivering them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []
        self.tasks: dict[str, EmbedTask] = {}

    def publish(self, topic: str, message: Message) -> str:
        self.messages.append((topic, message))
        return str(len(self.messages))

    def enqueue(self, task_name: str, task: EmbedTask) -> bool:
        if task_name in self.tasks:
            return False
        self.tasks[task_name] = task
        return True

    def tasks_for(self, version_id: str) -> list[EmbedTask]:
        return [task for task in self.tasks.values() if task.version_id == version_id]


@pytest.fixture
def recorder(clean_stack: LocalStack) -> Iterator[Recorder]:
    recording = Recorder()
    events.set_publisher(recording)
    events.set_task_queue(recording)
    yield recording
    events.set_publisher(clean_stack.bus)
    events.set_task_queue(clean_stack.tasks)


def _version(stack: LocalStack, kb_id: str, text: str) -> tuple[str, str]:
    """Store ``text`` as report.md and register it; return (document_id, version_id)."""
    document_id = ensure_document(stack.database, kb_id, "report.md", "report.md", "tester")
    info = storage.upload_bytes(
        stack.settings.upload_bucket,
        f"_uploads/{document_id}/{abs(hash(text))}/report.md",
        text.encode(),
    )
    registered = register_object(stack.database, document_id, info)
    assert registered is not None
    return document_id, registered.version_id


def _status(stack: LocalStack, version_id: str) -> Any:
    return stack.database.scalar(
        "SELECT status FROM document_versions WHERE id = CAST(:v AS uuid)", v=version_id
    )


def _embed_all(stack: LocalStack, recorder: Recorder, version_id: str) -> None:
    for task in recorder.tasks_for(version_id):
        embed_batch(stack.database, task)


TEXT_V1 = "# Report\n\n" + "The first version talks about apples. " * 200
TEXT_V2 = "# Report\n\n" + "The second version talks about pears. " * 200


def test_an_older_version_finishing_last_never_replaces_the_newer(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    db = clean_stack.database
    kb = Api(clean_stack).create_kb("race")
    document_id, v1 = _version(clean_stack, kb["id"], TEXT_V1)
    _, v2 = _version(clean_stack, kb["id"], TEXT_V2)

    # v1 gets as far as embedding, then v2 overtakes it completely.
    assert parse_version(db, v1) and chunk_version(db, v1)
    for version in (v2,):
        assert parse_version(db, version) and chunk_version(db, version)
        _embed_all(clean_stack, recorder, version)
        assert index_version(db, version)
    assert _status(clean_stack, v2) == "ready"

    _embed_all(clean_stack, recorder, v1)
    index_version(db, v1)

    assert _status(clean_stack, v1) == "superseded"
    assert {row[0] for row in all_chunks(clean_stack, document_id)} == {v2}
    assert all("pears" in chunk[1] for chunk in visible_chunks(clean_stack, document_id))


def test_redelivered_and_premature_messages_change_nothing(
    clean_stack: LocalStack, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config import get_settings

    monkeypatch.setattr(get_settings(), "embed_batch_size", 2)
    db = clean_stack.database
    kb = Api(clean_stack).create_kb("redelivery")
    document_id, version = _version(clean_stack, kb["id"], TEXT_V1)

    assert parse_version(db, version)
    assert parse_version(db, version), "a retry while still parsing redoes the step"
    assert chunk_version(db, version)
    assert not parse_version(db, version), "parse after chunking is a no-op"
    tasks = recorder.tasks_for(version)
    assert len(tasks) >= 2
    assert not chunk_version(db, version), "chunk after chunking is a no-op"
    assert len(recorder.tasks_for(version)) == len(tasks), "no new task names"

    embed_batch(db, tasks[0])
    assert not index_version(db, version), "index before every chunk is embedded waits"
    assert _status(clean_stack, version) == "embedding"
    for task in tasks:
        embed_batch(db, task)
        embed_batch(db, task)
    index_messages = [m for topic, m in recorder.messages if topic.endswith("index")]
    assert index_messages, "the last batch publishes index"
    assert index_version(db, version)
    chunks = visible_chunks(clean_stack, document_id)

    assert not index_version(db, version), "index twice is a no-op"
    assert not embed_batch(db, tasks[0]), "embed after ready is a no-op"
    assert visible_chunks(clean_stack, document_id) == chunks
    assert _status(clean_stack, version) == "ready"
    assert len(all_chunks(clean_stack, document_id)) == len(chunks)


def test_messages_for_a_deleted_document_are_acknowledged(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    from shared.documents import delete_document

    db = clean_stack.database
    kb = Api(clean_stack).create_kb("gone")
    document_id, version = _version(clean_stack, kb["id"], TEXT_V1)
    assert parse_version(db, version) and chunk_version(db, version)
    tasks = recorder.tasks_for(version)
    assert delete_document(db, document_id)

    assert not parse_version(db, version)
    assert not chunk_version(db, version)
    assert not embed_batch(db, tasks[0])
    assert not index_version(db, version)
    assert db.scalar("SELECT count(*) FROM chunks") == 0


def test_a_version_whose_object_was_replaced_before_parsing_is_superseded(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    db = clean_stack.database
    kb = Api(clean_stack).create_kb("replaced")
    document_id, v1 = _version(clean_stack, kb["id"], TEXT_V1)
    _, v2 = _version(clean_stack, kb["id"], TEXT_V2)
    v1_object = db.scalar(
        "SELECT object_name FROM document_versions WHERE id = CAST(:v AS uuid)", v=v1
    )
    storage.delete(clean_stack.settings.upload_bucket, v1_object)

    assert not parse_version(db, v1)
    assert _status(clean_stack, v1) == "superseded"
    assert parse_version(db, v2) and chunk_version(db, v2)
    _embed_all(clean_stack, recorder, v2)
    assert index_version(db, v2)
    assert _status(clean_stack, v2) == "ready"
    assert {row[0] for row in all_chunks(clean_stack, document_id)} == {v2}
