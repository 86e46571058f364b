"""Lifecycle events through an outbox: written with the change, published by a relay.

Publishing after a commit is at most once: a publish that fails, or an instance that
stops between the commit and the publish, loses the event. So the transaction that
makes a change also writes its event to the ``outbox`` table
(:func:`record_version_event`, :func:`record_document_event`), and a relay
(:func:`relay_outbox`) publishes unpublished rows to the lifecycle topic, oldest first,
marking them published in the same transaction that locked them.

The relay runs right after each transaction that wrote events (best effort,
:func:`relay_after_commit`) and from the sweeper on its schedule, which repairs a
crash between the commit and the publish. Delivery is at least once: a relay that
stops after publishing but before its commit leaves the rows unpublished, and they are
published again. Every event carries its outbox id (``event_id``), so consumers dedupe.

Event types are :data:`shared.models.LIFECYCLE_EVENT_TYPES`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from shared.db import Session
from shared.models import LIFECYCLE_EVENT_TYPES, DocumentLifecycleEvent
from shared.runtime import Runtime
from shared.store import outbox as store
from shared.store.outbox import OutboxEvent

log = logging.getLogger(__name__)

#: The version statuses that are lifecycle events, and the event type of each.
VERSION_STATUS_EVENTS: dict[str, str] = {
    "ready": "version.ready",
    "failed": "version.failed",
    "superseded": "version.superseded",
    "awaiting_approval": "version.awaiting_approval",
}


def _check_type(event_type: str) -> None:
    if event_type not in LIFECYCLE_EVENT_TYPES:
        raise ValueError(f"unknown lifecycle event type {event_type!r}")


def record_version_event(
    session: Session, event_type: str, version_id: str, **payload: Any
) -> str | None:
    """Write a version's lifecycle event in the caller's transaction.

    Args:
        session: The session inside the transaction making the change.
        event_type: One of :data:`shared.models.LIFECYCLE_EVENT_TYPES`.
        version_id: The version the event is about.
        **payload: Further facts, published as the event's ``data``.

    Returns:
        The event's id, or None if the version is gone.
    """
    _check_type(event_type)
    return store.add_version_event(session, event_type, version_id, payload)


def record_document_event(
    session: Session, event_type: str, document_id: str, **payload: Any
) -> str | None:
    """Write a document's lifecycle event in the caller's transaction.

    Call it before deleting the document's row: the event reads its knowledge base.

    Args:
        session: The session inside the transaction making the change.
        event_type: One of :data:`shared.models.LIFECYCLE_EVENT_TYPES`.
        document_id: The document the event is about.
        **payload: Further facts, published as the event's ``data``.

    Returns:
        The event's id, or None if the document is gone.
    """
    _check_type(event_type)
    return store.add_document_event(session, event_type, document_id, payload)


def lifecycle_message(event: OutboxEvent) -> DocumentLifecycleEvent:
    """The message published for an outbox row."""
    data = event.payload if isinstance(event.payload, dict) else {}
    status = event.type.split(".", 1)[1]
    return DocumentLifecycleEvent(
        event_id=event.id,
        event_type=event.type,
        workspace_id=event.workspace_id,
        document_id=event.document_id,
        version_id=event.version_id,
        knowledge_base_id=event.kb_id,
        status=status,
        error=data.get("error"),
        occurred_at=event.created_at,
        data=data,
    )


def retry_delay_s(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds before retrying a publish that failed ``attempts + 1`` times (doubling)."""
    return float(min(max_s, base_s * 2 ** min(attempts, 30)))


@dataclass
class RelayReport:
    """What one relay run did: ids published, and the id whose publish failed (if any)."""

    published: list[str] = field(default_factory=list)
    failed: str | None = None


def relay_outbox(runtime: Runtime, *, limit: int | None = None) -> RelayReport:
    """Publish the due unpublished events, oldest first; back off those that fail.

    The batch stays locked (``FOR UPDATE SKIP LOCKED``) while it is published, so
    relays running at once never publish the same row in the same pass. A failed
    publish ends the batch: the broker is likely down, and later events keep their
    order behind it. If the process stops before the commit, nothing is marked and
    the next run publishes the batch again (at least once).
    """
    settings = runtime.settings
    report = RelayReport()
    with runtime.database.transaction() as session:
        for event in store.claim_due(session, limit or settings.outbox_batch_size):
            try:
                runtime.publisher.publish(settings.topic_lifecycle, lifecycle_message(event))
            except Exception as error:  # any publish failure is retried later
                delay = retry_delay_s(
                    event.attempts, settings.outbox_retry_base_s, settings.outbox_retry_max_s
                )
                store.mark_failed(session, event.id, f"{type(error).__name__}: {error}", delay)
                log.warning(
                    "publishing lifecycle event failed; retrying in %.0f s",
                    delay,
                    extra={"event_id": event.id, "event_type": event.type},
                )
                report.failed = event.id
                break
            report.published.append(event.id)
        store.mark_published(session, report.published)
    return report


def relay_after_commit(runtime: Runtime) -> None:
    """Publish what the caller's committed transaction wrote, if possible right now.

    Best effort: any failure is left to the sweeper's relay run, because the events
    are already safe in the outbox.
    """
    try:
        relay_outbox(runtime)
    except Exception:  # the events wait in the outbox for the next run
        log.warning("outbox relay after commit failed; the sweeper retries", exc_info=True)
