"""Pipeline steps driven one by one, in orders the bus may deliver them.

The ``recorder`` fixture replaces the transports so each test decides exactly which
message is delivered when; the steps, the database and storage are the real ones.
"""

from __future__ import annotations

import pytest

from scripts.localstack.stack import LocalStack
from shared.pipeline.steps import chunk_version, embed_batch, index_version, parse_version
from shared.pipeline.versions import record_transient_error
from tests.support.api import Api, all_chunks, visible_chunks
from tests.support.pipeline import TEXT_V1, TEXT_V2, Recorder, store_version, version_status


def last_error(stack: LocalStack, version_id: str) -> str | None:
    """The error the version's latest attempt recorded, if any."""
    value = stack.database.scalar(
        "SELECT last_error FROM document_versions WHERE id = CAST(:v AS uuid)", v=version_id
    )
    return None if value is None else str(value)


def _embed_all(stack: LocalStack, recorder: Recorder, version_id: str) -> None:
    for task in recorder.tasks_for(version_id):
        embed_batch(stack.runtime, task)


def test_an_older_version_finishing_last_never_replaces_the_newer(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("race")
    document_id, v1 = store_version(clean_stack, kb["id"], TEXT_V1)
    _, v2 = store_version(clean_stack, kb["id"], TEXT_V2)

    # v1 gets as far as embedding, then v2 overtakes it completely.
    assert parse_version(rt, v1) and chunk_version(rt, v1)
    for version in (v2,):
        assert parse_version(rt, version) and chunk_version(rt, version)
        _embed_all(clean_stack, recorder, version)
        assert index_version(rt, version)
    assert version_status(clean_stack, v2) == "ready"

    _embed_all(clean_stack, recorder, v1)
    index_version(rt, v1)

    assert version_status(clean_stack, v1) == "superseded"
    assert {row[0] for row in all_chunks(clean_stack, document_id)} == {v2}
    assert all("pears" in chunk[1] for chunk in visible_chunks(clean_stack, document_id))


def test_redelivered_and_premature_messages_change_nothing(
    clean_stack: LocalStack, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config import get_settings

    monkeypatch.setattr(get_settings(), "embed_batch_size", 2)
    db = clean_stack.database
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("redelivery")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)

    assert parse_version(rt, version)
    assert not parse_version(rt, version), "a duplicate within the parse lease is dropped"
    record_transient_error(db, version, "parse", ConnectionError("storage timed out"))
    assert parse_version(rt, version), "a retry of an attempt that failed redoes the step"
    assert last_error(clean_stack, version) is None, "the new attempt owns the error column"
    db.run(
        "UPDATE document_versions SET lease_expires_at = now() - interval '1 second'"
        " WHERE id = CAST(:v AS uuid)",
        v=version,
    )
    assert parse_version(rt, version), "an attempt whose lease expired is taken over"
    assert chunk_version(rt, version)
    assert not parse_version(rt, version), "parse after chunking is a no-op"
    tasks = recorder.tasks_for(version)
    assert len(tasks) >= 2
    assert not chunk_version(rt, version), "chunk after chunking is a no-op"
    assert len(recorder.tasks_for(version)) == len(tasks), "no new task names"

    embed_batch(rt, tasks[0])
    assert not index_version(rt, version), "index before every chunk is embedded waits"
    assert version_status(clean_stack, version) == "embedding"
    for task in tasks:
        embed_batch(rt, task)
        embed_batch(rt, task)
    index_messages = [m for topic, m in recorder.messages if topic.endswith("index")]
    assert index_messages, "the last batch publishes index"
    assert index_version(rt, version)
    chunks = visible_chunks(clean_stack, document_id)

    assert not index_version(rt, version), "index twice is a no-op"
    assert not embed_batch(rt, tasks[0]), "embed after ready is a no-op"
    assert visible_chunks(clean_stack, document_id) == chunks
    assert version_status(clean_stack, version) == "ready"
    assert len(all_chunks(clean_stack, document_id)) == len(chunks)


def test_messages_for_a_deleted_document_are_acknowledged(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    from shared.documents import delete_document

    db = clean_stack.database
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("gone")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    assert parse_version(rt, version) and chunk_version(rt, version)
    tasks = recorder.tasks_for(version)
    assert delete_document(rt, document_id)

    assert not parse_version(rt, version)
    assert not chunk_version(rt, version)
    assert not embed_batch(rt, tasks[0])
    assert not index_version(rt, version)
    assert db.scalar("SELECT count(*) FROM chunks") == 0


def test_a_version_whose_object_was_replaced_before_parsing_is_superseded(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    db = clean_stack.database
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("replaced")
    document_id, v1 = store_version(clean_stack, kb["id"], TEXT_V1)
    _, v2 = store_version(clean_stack, kb["id"], TEXT_V2)
    v1_object = db.scalar(
        "SELECT object_name FROM document_versions WHERE id = CAST(:v AS uuid)", v=v1
    )
    clean_stack.objects.delete(clean_stack.settings.upload_bucket, v1_object)

    assert not parse_version(rt, v1)
    assert version_status(clean_stack, v1) == "superseded"
    assert parse_version(rt, v2) and chunk_version(rt, v2)
    _embed_all(clean_stack, recorder, v2)
    assert index_version(rt, v2)
    assert version_status(clean_stack, v2) == "ready"
    assert {row[0] for row in all_chunks(clean_stack, document_id)} == {v2}
