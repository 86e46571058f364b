"""Signed uploads whose file never arrived: expired by the sweeper, leaving nothing behind.

The upload function records an intent for each signed URL (``shared.store.uploads``).
Once the URL's lifetime and ``upload_expiry_grace_s`` have passed without the object's
arrival, the sweep expires the intent (an ``expired`` event in the document's stream)
and removes the document when it was only waiting for such uploads (no version, no
pending upload). An object that is in the bucket by then arrived and lost its event:
it is ingested instead. One that arrives after the expiry is refused and deleted by
ingest (``register_object`` settles the intent under the document's lock).

Concurrent sweeps are harmless: expiring is a conditional update, and the removal
checks again under the document's lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.pipeline.ingest import register_object
from shared.runtime import Runtime
from shared.store import documents as document_store
from shared.store import events as event_store
from shared.store import uploads as upload_store
from shared.store.uploads import UploadIntent

log = logging.getLogger(__name__)

# How long an expired upload is remembered so its object is refused: a resumable upload
# session begun while the URL was valid may complete for up to a week.
TOMBSTONE_S = 8 * 24 * 3600


@dataclass
class ExpiryReport:
    """What one expiry pass did."""

    expired: list[str] = field(default_factory=list)  # object names
    removed_documents: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # object names ingested late


def expire_uploads(runtime: Runtime, *, limit: int = 500) -> ExpiryReport:
    """Expire signed uploads overdue by their grace period; remove what only they held.

    Args:
        runtime: The instance's runtime.
        limit: Most intents (and documents) handled in one pass; the next sweep goes on.
    """
    database = runtime.database
    report = ExpiryReport()
    grace_s = runtime.settings.upload_expiry_grace_s
    for intent in upload_store.overdue_intents(database, grace_s, limit):
        if _arrived(runtime, intent):
            report.recovered.append(intent.object_name)
        elif _expire(runtime, intent):
            report.expired.append(intent.object_name)
    for document_id in upload_store.abandoned_documents(database, limit):
        if _remove_abandoned(runtime, document_id):
            report.removed_documents.append(document_id)
    upload_store.purge_tombstones(database, TOMBSTONE_S)
    if report.expired or report.removed_documents or report.recovered:
        log.info(
            "uploads expired",
            extra={
                "expired": len(report.expired),
                "removed_documents": len(report.removed_documents),
                "recovered": len(report.recovered),
            },
        )
    return report


def _arrived(runtime: Runtime, intent: UploadIntent) -> bool:
    """Ingest the intent's object if it is in the bucket (its event was lost or is late)."""
    info = runtime.objects.stat(runtime.settings.upload_bucket, intent.object_name)
    if info is None:
        return False
    if register_object(runtime, intent.document_id, info) is None:
        runtime.objects.delete(info.bucket, info.name)  # its document is gone
    return True


def _expire(runtime: Runtime, intent: UploadIntent) -> bool:
    """Mark the intent expired with an ``expired`` event; False if another sweep did."""
    with runtime.database.transaction() as session:
        if document_store.lock_document(session, intent.document_id) is None:
            return False
        if not upload_store.mark_expired(session, intent.object_name):
            return False
        event_store.record_event(
            session,
            document_id=intent.document_id,
            version_id=None,
            kb_id=intent.kb_id,
            status="expired",
            detail={
                "object": f"gs://{runtime.settings.upload_bucket}/{intent.object_name}",
                "expires_at": intent.expires_at.isoformat(),
                "reason": "the signed upload URL expired before the file arrived",
            },
        )
    return True


def _remove_abandoned(runtime: Runtime, document_id: str) -> bool:
    """Delete a document that only waited for expired uploads (checked under its lock).

    It has no version, so no chunk, object or citation: its events and its row are all
    there is (its intents cascade).
    """
    with runtime.database.transaction() as session:
        if document_store.lock_document(session, document_id) is None:
            return False
        if not upload_store.is_abandoned(session, document_id):
            return False
        event_store.delete_document_events(session, document_id)
        document_store.delete_document_row(session, document_id)
    return True
