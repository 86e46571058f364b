"""Document progress events: the rows behind a document's live progress stream."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from shared.db.connection import Database, Session


@dataclass(frozen=True)
class DocumentEvent:
    """One progress event of a document (``detail`` as stored: JSON text or a dict)."""

    id: int
    version_id: str | None
    status: str
    detail: Any
    created_at: dt.datetime


def append_event(
    session: Session,
    *,
    document_id: str,
    version_id: str | None,
    kb_id: str,
    status: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append a progress event for the document's live stream, in the caller's transaction.

    Args:
        session: The session (usually inside the transition's transaction).
        document_id: The document the event belongs to.
        version_id: The version it is about, if any.
        kb_id: The document's knowledge base.
        status: The stage entered (or e.g. ``redriven``).
        detail: Extra JSON details.
    """
    session.run(
        "INSERT INTO document_events (document_id, version_id, kb_id, status, detail)"
        " VALUES (CAST(:d AS uuid), CAST(:v AS uuid), CAST(:k AS uuid), :s,"
        " CAST(:detail AS jsonb))",
        d=document_id,
        v=version_id,
        k=kb_id,
        s=status,
        detail=json.dumps(detail or {}),
    )


def events_after(
    database: Database | Session, document_id: str, after_id: int
) -> list[DocumentEvent]:
    """The document's progress events with id greater than ``after_id``, oldest first (500 at most).

    Args:
        database: The pool or a session.
        document_id: The document's id (a UUID).
        after_id: Only events with a greater id are returned.
    """
    return database.records(
        DocumentEvent,
        "SELECT id, version_id::text AS version_id, status, detail, created_at"
        " FROM document_events"
        " WHERE document_id = CAST(:d AS uuid) AND id > :after ORDER BY id LIMIT 500",
        d=document_id,
        after=after_id,
    )
