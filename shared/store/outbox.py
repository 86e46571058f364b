"""The outbox of lifecycle events (``outbox``): written with the change, read by the relay."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session


@dataclass(frozen=True)
class OutboxEvent:
    """A lifecycle event as stored (``payload`` as the driver returns jsonb)."""

    id: str
    seq: int
    type: str
    workspace_id: str | None
    kb_id: str
    document_id: str
    version_id: str | None
    payload: dict[str, Any] | str
    created_at: dt.datetime
    published_at: dt.datetime | None
    attempts: int
    last_error: str | None


_COLUMNS = (
    "id::text AS id, seq, type, workspace_id::text AS workspace_id, kb_id::text AS kb_id,"
    " document_id::text AS document_id, version_id::text AS version_id, payload, created_at,"
    " published_at, attempts, last_error"
)


def add_version_event(
    session: Session, event_type: str, version_id: str, payload: dict[str, Any]
) -> str | None:
    """Write an event about a version, in the caller's transaction; return its id.

    The version's document, knowledge base and workspace are read in the same
    statement, so the caller names the version only. None if the version is gone.
    """
    event_id = session.scalar(
        "INSERT INTO outbox (type, workspace_id, kb_id, document_id, version_id, payload)"
        " SELECT :t, k.workspace_id, v.kb_id, v.document_id, v.id, CAST(:p AS jsonb)"
        " FROM document_versions v JOIN knowledge_bases k ON k.id = v.kb_id"
        " WHERE v.id = CAST(:v AS uuid) RETURNING id::text",
        t=event_type,
        v=version_id,
        p=json.dumps(payload),
    )
    return None if event_id is None else str(event_id)


def add_document_event(
    session: Session, event_type: str, document_id: str, payload: dict[str, Any]
) -> str | None:
    """Write an event about a document, in the caller's transaction; return its id.

    Call it before the document's row is deleted (the event names its knowledge base).
    None if the document is gone.
    """
    event_id = session.scalar(
        "INSERT INTO outbox (type, workspace_id, kb_id, document_id, version_id, payload)"
        " SELECT :t, k.workspace_id, d.kb_id, d.id, d.active_version_id, CAST(:p AS jsonb)"
        " FROM documents d JOIN knowledge_bases k ON k.id = d.kb_id"
        " WHERE d.id = CAST(:d AS uuid) RETURNING id::text",
        t=event_type,
        d=document_id,
        p=json.dumps(payload),
    )
    return None if event_id is None else str(event_id)


def claim_due(session: Session, limit: int) -> list[OutboxEvent]:
    """Lock up to ``limit`` unpublished events that are due, oldest first.

    Rows another relay holds are skipped (``SKIP LOCKED``), so relays running at the
    same moment share the backlog instead of publishing the same events.
    """
    return session.records(
        OutboxEvent,
        f"SELECT {_COLUMNS} FROM outbox WHERE published_at IS NULL AND next_attempt_at <= now()"
        " ORDER BY seq LIMIT :n FOR UPDATE SKIP LOCKED",
        n=limit,
    )


def mark_published(session: Session, event_ids: list[str]) -> None:
    """Record that these events were handed to the broker."""
    if event_ids:
        session.run(
            "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL"
            " WHERE id = ANY(CAST(:ids AS uuid[]))",
            ids=event_ids,
        )


def mark_failed(session: Session, event_id: str, error: str, retry_in_s: float) -> None:
    """Record a failed publish; the event is due again after ``retry_in_s`` seconds."""
    session.run(
        "UPDATE outbox SET attempts = attempts + 1, last_error = :e,"
        " next_attempt_at = now() + make_interval(secs => :s) WHERE id = CAST(:id AS uuid)",
        id=event_id,
        e=error[:2000],
        s=retry_in_s,
    )


def events_of_document(database: Database | Session, document_id: str) -> list[OutboxEvent]:
    """Every event about a document, in the order written (tests and operators)."""
    return database.records(
        OutboxEvent,
        f"SELECT {_COLUMNS} FROM outbox WHERE document_id = CAST(:d AS uuid) ORDER BY seq",
        d=document_id,
    )


def unpublished_count(database: Database | Session) -> int:
    """How many events wait to be published (a backlog worth alerting on)."""
    return int(database.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") or 0)


def get_event(database: Database | Session, event_id: str) -> OutboxEvent | None:
    """The event with id ``event_id``, published or not, or None."""
    return database.record(
        OutboxEvent, f"SELECT {_COLUMNS} FROM outbox WHERE id = CAST(:id AS uuid)", id=event_id
    )


def prune_published(session: Session, older_than_days: int) -> int:
    """Delete events published more than ``older_than_days`` ago; return how many.

    A webhook delivery reads its event from here, so the retention must outlast the
    delivery queue's retries.
    """
    return len(
        session.run(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(days => :d) RETURNING 1",
            d=older_than_days,
        )
    )
