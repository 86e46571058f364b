"""Signed uploads whose file never arrives expire: the sweep cleans up, late files are refused.

The URL's lifetime is one second here (``signed_url_ttl_s``); the sweep first runs with a
long grace period (nothing may expire), then with none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scripts.localstack.stack import LocalStack
from shared.documents import events_after
from shared.pipeline import sweeper
from tests.support.api import Api

TEXT = b"# Greenhouse log\n\nVent the greenhouse when it passes thirty degrees.\n"


@pytest.fixture
def short_urls(clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The stack with one-second upload URLs and an hour of grace (tests lower it)."""
    runtime = clean_stack.runtime
    configured = runtime.settings.model_copy(
        update={"signed_url_ttl_s": 1, "upload_expiry_grace_s": 3600}
    )
    monkeypatch.setattr(runtime, "settings", configured)
    yield clean_stack


def _grant(api: Api, kb: str, filename: str) -> dict[str, Any]:
    response = api.post(
        f"/v1/knowledge-bases/{kb}/uploads",
        json={"filename": filename, "content_type": "text/markdown", "size": len(TEXT)},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.json or {})


def _object_name(grant: dict[str, Any]) -> str:
    return str(grant["object"].split("/", 3)[3])


def _no_grace(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = stack.runtime
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.model_copy(update={"upload_expiry_grace_s": 0})
    )


def _sweep_until_expired(stack: LocalStack, object_names: set[str]) -> None:
    """Sweep until every object's upload expired (the URLs live one second)."""
    for _ in range(120):
        pending = stack.database.scalar(
            "SELECT count(*) FROM upload_intents WHERE expired_at IS NULL"
            " AND object_name = ANY(CAST(:names AS text[]))",
            names=sorted(object_names),
        )
        if not pending:
            return
        sweeper.sweep(stack.runtime)
        time.sleep(0.25)
    raise AssertionError(f"uploads never expired: {object_names}")


def _rows_of(stack: LocalStack, document_id: str) -> dict[str, int]:
    return {
        table: stack.database.scalar(
            f"SELECT count(*) FROM {table} WHERE {column} = CAST(:d AS uuid)", d=document_id
        )
        for table, column in (
            ("documents", "id"),
            ("document_versions", "document_id"),
            ("document_events", "document_id"),
            ("upload_intents", "document_id"),
        )
    }


def _expired_events(stack: LocalStack, document_id: str) -> list[dict[str, Any]]:
    return list(
        stack.database.scalars(
            "SELECT detail FROM document_events WHERE document_id = CAST(:d AS uuid)"
            " AND status = 'expired'",
            d=document_id,
        )
    )


def test_a_signed_upload_that_never_arrives_is_cleaned_up_and_a_late_file_refused(
    short_urls: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, api = short_urls, Api(short_urls)
    bucket = stack.settings.upload_bucket
    kb = api.create_kb("greenhouse")["id"]
    # A document that exists already, then a second upload of it that never comes.
    kept = api.upload(kb, "kept.md", TEXT)["document_id"]
    stack.wait_idle(120)
    never = _grant(api, kb, "never.md")
    again = _grant(api, kb, "kept.md")
    assert again["document_id"] == kept
    assert api.document(never["document_id"])["status"] == "awaiting_upload"

    time.sleep(1.5)  # the URLs have expired, but the grace period has not
    report = sweeper.sweep(stack.runtime).to_json()
    assert report["expired_uploads"] == [] and report["removed_documents"] == []
    assert _rows_of(stack, never["document_id"])["documents"] == 1

    # Two sweeps at once: each upload expires once.
    _no_grace(stack, monkeypatch)
    reports: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: reports.append(sweeper.sweep(stack.runtime).to_json()))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _sweep_until_expired(stack, {_object_name(never), _object_name(again)})
    expired = [name for report in reports for name in report["expired_uploads"]]
    assert len(expired) == len(set(expired))

    # The never-uploaded document is gone with everything it had.
    assert _rows_of(stack, never["document_id"]) == {
        "documents": 0,
        "document_versions": 0,
        "document_events": 0,
        "upload_intents": 0,
    }
    assert api.get(f"/v1/documents/{never['document_id']}").status_code == 404
    assert stack.objects.list_names(bucket, f"_uploads/{never['document_id']}/") == []
    # The existing document stays as it was, with one ``expired`` event in its stream.
    [event] = _expired_events(stack, kept)
    assert event["object"] == again["object"]
    document = api.document(kept)
    assert document["status"] == "ready" and len(document["versions"]) == 1
    streamed = events_after(stack.database, kept, 0)  # what the live stream sends
    assert [e["status"] for e in streamed].count("expired") == 1

    # Files that still arrive (a URL used late, a resumable upload finishing) are refused.
    for grant in (never, again):
        put = requests.put(grant["upload_url"], data=TEXT, headers=grant["headers"], timeout=30)
        if put.status_code >= 300:  # an emulator that enforces expiry: write it directly
            stack.objects.upload_bytes(bucket, _object_name(grant), TEXT)
    stack.notifier.poll_once()  # type: ignore[union-attr]
    stack.wait_idle(120)
    sweeper.sweep(stack.runtime)
    assert _rows_of(stack, never["document_id"])["documents"] == 0
    assert api.get(f"/v1/documents/{never['document_id']}").status_code == 404
    assert stack.objects.stat(bucket, _object_name(never)) is None
    assert stack.objects.stat(bucket, _object_name(again)) is None
    assert len(api.document(kept)["versions"]) == 1
    assert len(_expired_events(stack, kept)) == 1


def test_an_upload_whose_event_was_lost_is_ingested_by_the_sweep(
    short_urls: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, api = short_urls, Api(short_urls)
    kb = api.create_kb("greenhouse")["id"]
    grant = _grant(api, kb, "arrived.md")
    put = requests.put(grant["upload_url"], data=TEXT, headers=grant["headers"], timeout=30)
    assert put.status_code < 300, put.text
    _no_grace(stack, monkeypatch)
    # Whether the bucket's event or the sweep registers it first, it is never expired.
    _sweep_until_expired(stack, {_object_name(grant)})
    stack.wait_idle(120)
    document = api.document(grant["document_id"])
    assert len(document["versions"]) == 1 and document["status"] == "ready", document
    assert _expired_events(stack, grant["document_id"]) == []
