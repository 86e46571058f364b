"""Document events: the progress stream of a document's versions (``document_events``)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session


@dataclass(frozen=True)
class DocumentEvent:
    """One progress event of a document (``detail`` as the driver returns jsonb)."""

    id: int
    version_id: str | None
    status: str
    detail: dict[str, Any] | str | None
    created_at: dt.datetime


def record_event(
    session: Session,
    *,
    document_id: str,
    version_id: str | None,
    kb_id: str,
    status: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append a progress event for the document's live stream.

    Args:
        session: A session, usually inside the transaction making the change.
        document_id: The document the event is about.
        version_id: Its version, if the event concerns one.
        kb_id: The document's knowledge base.
        status: What happened (a version status, or e.g. ``redriven``).
        detail: Further facts about the event, stored as jsonb.
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


def events_after(database: Database, document_id: str, after_id: int) -> list[DocumentEvent]:
    """The document's events with id greater than ``after_id``, oldest first (at most 500)."""
    return database.records(
        DocumentEvent,
        "SELECT id, version_id::text AS version_id, status, detail, created_at"
        " FROM document_events"
        " WHERE document_id = CAST(:d AS uuid) AND id > :after ORDER BY id LIMIT 500",
        d=document_id,
        after=after_id,
    )


def delete_document_events(session: Session, document_id: str) -> None:
    """Delete every event of the document (in the caller's transaction)."""
    session.run("DELETE FROM document_events WHERE document_id = CAST(:d AS uuid)", d=document_id)
