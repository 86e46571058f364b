"""Document versions: loading, conditional state transitions and failure records.

A version moves ``received -> parsing -> chunking -> embedding -> indexing -> ready``
or ends ``failed`` (or ``superseded`` once a newer version is active). Every transition
is a conditional UPDATE (``WHERE status = ANY(allowed)``), so a redelivered message
finds the version already past its step and does nothing; each one also appends a
``document_events`` row in the same transaction for the live progress stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.db import Database
from shared.db.connection import Session
from shared.ids import is_uuid

STAGES = ("received", "parsing", "chunking", "embedding", "indexing", "ready")
# The states a version is still working through (the sweeper watches these).
IN_PROGRESS = STAGES[:-1]
_TIMESTAMPED = frozenset({*STAGES, "failed"})


@dataclass(frozen=True)
class Version:
    """A document version as the pipeline steps see it."""

    id: str
    document_id: str
    kb_id: str
    number: int
    status: str
    object_bucket: str
    object_name: str
    object_generation: int | None
    size_bytes: int | None
    filename: str
    last_error: str | None


_VERSION_COLUMNS = (
    "v.id::text, v.document_id::text, v.kb_id::text, v.number, v.status, v.object_bucket,"
    " v.object_name, v.object_generation, v.size_bytes, d.filename, v.last_error"
)


def load_version(session: Session, version_id: str, *, lock: bool = False) -> Version | None:
    """Return the version, or None if it (or its document) was deleted."""
    sql = (
        f"SELECT {_VERSION_COLUMNS} FROM document_versions v"
        " JOIN documents d ON d.id = v.document_id WHERE v.id = CAST(:id AS uuid)"
    )
    if lock:
        sql += " FOR UPDATE OF v"
    row = session.one(sql, id=version_id) if is_uuid(version_id) else None
    return Version(*row) if row else None


def record_event(
    session: Session,
    *,
    document_id: str,
    version_id: str | None,
    kb_id: str,
    status: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append a progress event for the document's live stream."""
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


def transition(
    session: Session,
    version_id: str,
    to_status: str,
    allowed_from: tuple[str, ...],
    *,
    detail: dict[str, Any] | None = None,
    **columns: Any,
) -> Version | None:
    """Move a version to ``to_status`` if it is in one of ``allowed_from``.

    Sets the stage timestamp the first time the stage is entered, and any extra
    ``columns`` given (e.g. ``page_count=12``). Returns the updated version, or None if
    the version is gone or not in an allowed state (the caller then does nothing).
    """
    assignments = ["status = :to_status", "updated_at = now()"]
    if to_status in _TIMESTAMPED:
        assignments.append(f"{to_status}_at = coalesce({to_status}_at, now())")
    for name in columns:
        assignments.append(f"{name} = :col_{name}")
    params = {f"col_{name}": value for name, value in columns.items()}
    # The sub-select locks the row and hands back the status it had, so a redelivered
    # message that re-enters the stage it is already in (parsing -> parsing) updates
    # the row but adds no second event to the progress stream.
    row = session.one(
        f"UPDATE document_versions v SET {', '.join(assignments)}"
        " FROM (SELECT id, status AS previous FROM document_versions"
        "       WHERE id = CAST(:id AS uuid) FOR UPDATE) p"
        " WHERE v.id = p.id AND p.previous = ANY(CAST(:allowed AS text[]))"
        " RETURNING p.previous",
        id=version_id,
        to_status=to_status,
        allowed=list(allowed_from),
        **params,
    )
    if row is None:
        return None
    version = load_version(session, version_id)
    if version is not None and row[0] != to_status:
        record_event(
            session,
            document_id=version.document_id,
            version_id=version.id,
            kb_id=version.kb_id,
            status=to_status,
            detail=detail,
        )
    return version


def claim_stage(
    session: Session, version_id: str, stage: str, from_status: str, lease_s: int
) -> Version | None:
    """Enter ``stage`` from ``from_status``, or take it over from an attempt that is over.

    At-least-once delivery hands a step the same message more than once, sometimes at
    the same moment (an upload and its bucket event both ask for the parse). Re-entering
    a stage another attempt holds would do its work twice, so a version already in
    ``stage`` is claimed only when that attempt is over: it recorded an error (a retry
    of a failed attempt) or made no progress for ``lease_s`` seconds (it crashed; the
    lease is at least the function's timeout). A claim clears the recorded error, so an
    error there always belongs to the latest attempt.

    Returns:
        The version, or None if it is gone, past the stage, or held by a live attempt.
    """
    claimed = session.one(
        "UPDATE document_versions SET last_error = NULL, updated_at = now()"
        " WHERE id = CAST(:id AS uuid) AND status = :stage AND (last_error IS NOT NULL"
        " OR updated_at < now() - make_interval(secs => :lease)) RETURNING id",
        id=version_id,
        stage=stage,
        lease=lease_s,
    )
    if claimed is not None:
        return load_version(session, version_id)
    return transition(session, version_id, stage, (from_status,))


def fail_version(database: Database, version_id: str, code: str, message: str) -> Version | None:
    """Mark a version failed with a reason, unless it already finished (ready/superseded).

    A failed version can never become active, so chunks it got as far as writing are
    deleted with it rather than left behind in the table and its indexes.
    """
    with database.transaction() as session:
        version = transition(
            session,
            version_id,
            "failed",
            IN_PROGRESS,
            detail={"error_code": code, "error": message},
            error_code=code,
            error=message[:2000],
        )
        if version is not None:
            session.run("DELETE FROM chunks WHERE version_id = CAST(:v AS uuid)", v=version_id)
        return version


def record_transient_error(
    database: Database, version_id: str, step: str, error: BaseException
) -> None:
    """Remember the latest transient error so the dead-letter handler can report it."""
    message = f"{step}: {type(error).__name__}: {error}"[:2000]
    database.run(
        "UPDATE document_versions SET last_error = :m, updated_at = now()"
        " WHERE id = CAST(:id AS uuid)",
        m=message,
        id=version_id,
    )


def count_unembedded(session: Session, version_id: str) -> int:
    """How many chunks of the version still have no embedding."""
    return int(
        session.scalar(
            "SELECT count(*) FROM chunks WHERE version_id = CAST(:v AS uuid) AND embedding IS NULL",
            v=version_id,
        )
    )
