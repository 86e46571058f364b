"""The sweeper re-drives versions whose next message was lost, and fails hopeless ones."""

from __future__ import annotations

import time

import pytest

from scripts.localstack.stack import LocalStack
from shared.pipeline.leases import Heartbeat, new_holder
from shared.pipeline.steps import chunk_version, embed_batch, parse_version
from shared.pipeline.versions import claim_stage
from shared.store import versions as version_store
from shared.store.versions import release_lease
from tests.support.api import Api, visible_chunks
from tests.support.pipeline import (
    TEXT_V1,
    Recorder,
    restore_transports,
    store_version,
    version_status,
)

# The sweep also relays the outbox (tests/integration/test_outbox.py), expires signed
# uploads (tests/integration/test_upload_expiry.py) and starts and re-drives source syncs
# (tests/integration/test_sources.py): nothing of these here.
NOTHING_EXPIRED: dict[str, list[str]] = {
    "published": [],
    "expired_uploads": [],
    "removed_documents": [],
    "recovered_uploads": [],
    "syncs_started": [],
    "syncs_redriven": [],
    "syncs_failed": [],
}


def _stall(stack: LocalStack, version_id: str, minutes: int = 60) -> None:
    stack.database.run(
        "UPDATE document_versions SET updated_at = now() - make_interval(mins => :m),"
        " lease_expires_at = now() - make_interval(mins => :m) WHERE id = CAST(:v AS uuid)",
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
    # The bucket notifier announces the stored object too (at least once, like Eventarc):
    # let that event through while messages are still recorded, so no parse it sends
    # can run once delivery is restored.
    if clean_stack.notifier is not None:
        clean_stack.notifier.poll_once()
    clean_stack.wait_idle()
    restore_transports(clean_stack)  # what follows is delivered again

    nothing: dict[str, object] = {"redriven": {}, "failed": [], **NOTHING_EXPIRED}
    assert clean_stack.sweep() == nothing, "a recent version is left alone"
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

    assert clean_stack.sweep() == {"redriven": {}, "failed": [], **NOTHING_EXPIRED}


def _start_attempt(stack: LocalStack, version_id: str, stage: str = "parsing") -> str:
    """An attempt claims the stage and dies at once: no error recorded, no heartbeat."""
    holder = new_holder(stage)
    with stack.database.transaction() as session:
        claimed = claim_stage(session, version_id, stage, "received", holder=holder, lease_s=600)
    assert claimed is not None
    return holder


def _counts(stack: LocalStack, version_id: str) -> tuple[int, int]:
    return tuple(
        stack.database.run(
            "SELECT lost_attempts, idle_redrives FROM document_versions"
            " WHERE id = CAST(:v AS uuid)",
            v=version_id,
        )[0]
    )


def test_a_parse_that_died_without_an_error_is_taken_over_by_a_redrive(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("died")
    document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    _start_attempt(clean_stack, version)
    assert not parse_version(rt, version), "a duplicate inside the live lease is dropped"
    restore_transports(clean_stack)  # the parse message died with the attempt

    _stall(clean_stack, version)  # the lease ran out, nothing progressed
    report = clean_stack.sweep()
    clean_stack.wait_idle()

    assert report == {"redriven": {version: "parsing"}, "failed": [], **NOTHING_EXPIRED}
    document = Api(clean_stack).document(document_id)
    assert document["status"] == "ready", document
    assert len(visible_chunks(clean_stack, document_id)) == document["chunk_count"] > 0


def test_the_sweeper_never_redrives_inside_a_live_lease(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    kb = Api(clean_stack).create_kb("busy")
    _document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    _start_attempt(clean_stack, version)
    # A long parse: no progress for an hour, but its heartbeat keeps the lease live.
    clean_stack.database.run(
        "UPDATE document_versions SET updated_at = now() - interval '1 hour'"
        " WHERE id = CAST(:v AS uuid)",
        v=version,
    )

    sent = list(recorder.messages)

    assert clean_stack.sweep() == {"redriven": {}, "failed": [], **NOTHING_EXPIRED}
    assert recorder.messages == sent, "nothing was re-sent"


def test_a_heartbeat_keeps_renewing_the_lease_until_the_work_ends(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    db = clean_stack.database
    kb = Api(clean_stack).create_kb("beating")
    _document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    holder = _start_attempt(clean_stack, version)
    db.run(
        "UPDATE document_versions SET lease_expires_at = now() - interval '1 second'"
        " WHERE id = CAST(:v AS uuid)",
        v=version,
    )

    def live() -> bool:
        return bool(
            db.scalar(
                "SELECT lease_expires_at > now() FROM document_versions"
                " WHERE id = CAST(:v AS uuid)",
                v=version,
            )
        )

    with Heartbeat(db, version, holder, lease_s=1):
        deadline = time.monotonic() + 60
        while not live() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live(), "the heartbeat renewed the expired lease"
    with db.transaction() as session:
        release_lease(session, version, holder)
    assert not version_store.renew_lease(db, version, holder, 1), "a released lease stays released"


def test_a_stage_fails_as_stalled_only_once_its_lost_attempts_exceed_the_budget(
    clean_stack: LocalStack, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config import get_settings

    monkeypatch.setattr(get_settings(), "max_sweeps", 2)
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("crashing")
    _document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    _start_attempt(clean_stack, version)
    for lost in (1, 2):
        # Duplicates dropped inside the live lease are no attempts: they count nowhere.
        assert not parse_version(rt, version)
        assert not parse_version(rt, version)
        _stall(clean_stack, version)
        assert clean_stack.sweep()["redriven"] == {version: "parsing"}
        assert _counts(clean_stack, version) == (lost, 0)
        _start_attempt(clean_stack, version)  # the re-drive's attempt starts, then dies too
        assert _counts(clean_stack, version) == (lost, 0)
    _stall(clean_stack, version)

    assert clean_stack.sweep()["failed"] == [version]
    assert version_status(clean_stack, version) == "failed"


def test_progress_to_the_next_stage_restores_the_budget(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("progress")
    _document_id, version = store_version(clean_stack, kb["id"], TEXT_V1)
    _start_attempt(clean_stack, version)
    _stall(clean_stack, version)
    clean_stack.sweep()
    assert _counts(clean_stack, version) == (1, 0)

    assert parse_version(rt, version)  # the re-drive's attempt parses
    assert chunk_version(rt, version)

    assert version_status(clean_stack, version) == "embedding"
    assert _counts(clean_stack, version) == (0, 0)
