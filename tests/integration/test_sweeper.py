"""The sweeper re-drives versions whose next message was lost, and fails hopeless ones."""

from __future__ import annotations

import pytest

from scripts.localstack.stack import LocalStack
from shared.pipeline.steps import chunk_version, embed_batch, parse_version
from tests.support.api import Api, visible_chunks
from tests.support.pipeline import TEXT_V1, Recorder, restore_transports, store_version


def _stall(stack: LocalStack, version_id: str, minutes: int = 60) -> None:
    stack.database.run(
        "UPDATE document_versions SET updated_at = now() - make_interval(mins => :m)"
        " WHERE id = CAST(:v AS uuid)",
        m=minutes,
        v=version_id,
    )


@pytest.mark.parametrize("stage", ["received", "chunking", "embedding", "indexing"])
def test_a_version_whose_message_was_lost_is_redriven_to_ready(
    clean_stack: LocalStack, recorder: Recorder, stage: str
) -> None:
    db = clean_stack.database
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("lost")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    # Drive the version to `stage` while every message it sends is lost (recorded only).
    if stage != "received":
        parse_version(rt, version)
        db.run(
            "UPDATE document_versions SET status = 'chunking' WHERE id = CAST(:v AS uuid)",
            v=version,
        )
    if stage in ("embedding", "indexing"):
        db.run(
            "UPDATE document_versions SET status = 'parsing' WHERE id = CAST(:v AS uuid)",
            v=version,
        )
        chunk_version(rt, version)
    if stage == "indexing":
        for task in recorder.tasks_for(version):
            embed_batch(rt, task)
    assert (
        db.scalar("SELECT status FROM document_versions WHERE id = CAST(:v AS uuid)", v=version)
        == stage
    )
    restore_transports(clean_stack)  # what follows is delivered again

    assert clean_stack.sweep() == {"redriven": {}, "failed": [], "published": []}, (
        "a recent version is left alone"
    )
    _stall(clean_stack, version)
    report = clean_stack.sweep()
    clean_stack.wait_idle()

    assert report["redriven"] == {version: stage}
    document = Api(clean_stack).document(document_id)
    assert document["status"] == "ready", document
    assert len(visible_chunks(clean_stack, document_id)) == document["chunk_count"] > 0
    assert (
        db.scalar("SELECT sweeps FROM document_versions WHERE id = CAST(:v AS uuid)", v=version)
        == 1
    )


def test_a_version_that_never_progresses_fails_after_the_last_sweep(
    clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions.parse
    from shared.config import get_settings

    monkeypatch.setattr(get_settings(), "max_sweeps", 2)
    # Parse hangs forever, as far as the pipeline can tell: it acknowledges and does nothing.
    monkeypatch.setattr(functions.parse, "parse_version", lambda database, version_id: False)
    api = Api(clean_stack)
    kb = api.create_kb("stuck")
    accepted = api.upload(kb["id"], "stuck.md", b"# Stuck\n\nNever parsed.")
    clean_stack.wait_idle()

    for expected in ({accepted["version_id"]: "received"}, {accepted["version_id"]: "received"}):
        _stall(clean_stack, accepted["version_id"])
        assert clean_stack.sweep()["redriven"] == expected
        clean_stack.wait_idle()
    _stall(clean_stack, accepted["version_id"])
    assert clean_stack.sweep()["failed"] == [accepted["version_id"]]

    version = api.document(accepted["document_id"])["versions"][0]
    assert version["status"] == "failed"
    assert version["error"]["code"] == "stalled"
    assert "2 re-drives" in version["error"]["message"]


def test_finished_versions_are_never_swept(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("done")
    ready = api.ingest(kb["id"], "ok.md", b"# Fine\n\nAll good.")
    failed = api.ingest(kb["id"], "bad.md", b"")
    for document in (ready, failed):
        _stall(clean_stack, document["versions"][0]["id"])

    assert clean_stack.sweep() == {"redriven": {}, "failed": [], "published": []}
