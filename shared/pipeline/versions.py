"""Document versions: conditional state transitions and failure records.

A version moves ``received -> parsing -> chunking -> embedding -> indexing -> ready``
or ends ``failed`` (or ``superseded`` once a newer version is active). Every transition
is a conditional UPDATE (``WHERE status = ANY(allowed)``, :mod:`shared.store.versions`),
so a redelivered message finds the version already past its step and does nothing;
each one also appends a ``document_events`` row in the same transaction for the live
progress stream, and entering ``ready``, ``failed`` or ``superseded`` writes the
lifecycle event to the outbox in that transaction too (:mod:`shared.pipeline.outbox`).
"""

from __future__ import annotations

from typing import Any

from shared.db import Database, Session
from shared.pipeline.outbox import VERSION_STATUS_EVENTS, record_version_event
from shared.store import chunks as chunk_store
from shared.store import versions as store
from shared.store.events import record_event
from shared.store.versions import Version, load_version

__all__ = [
    "IN_PROGRESS",
    "STAGES",
    "Version",
    "claim_stage",
    "fail_version",
    "load_version",
    "record_transient_error",
    "transition",
]

STAGES = ("received", "parsing", "chunking", "embedding", "indexing", "ready")
# The states a version is still working through (the sweeper watches these).
IN_PROGRESS = STAGES[:-1]


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
    previous = store.change_status(session, version_id, to_status, allowed_from, columns)
    if previous is None:
        return None
    version = load_version(session, version_id)
    # Re-entering the stage the version is already in (a redelivery) adds no event.
    if version is not None and previous != to_status:
        record_event(
            session,
            document_id=version.document_id,
            version_id=version.id,
            kb_id=version.kb_id,
            status=to_status,
            detail=detail,
        )
        event_type = VERSION_STATUS_EVENTS.get(to_status)
        if event_type is not None:
            failure = (
                {"error_code": columns.get("error_code"), "error": columns.get("error")}
                if to_status == "failed"
                else {}
            )
            record_version_event(
                session,
                event_type,
                version.id,
                number=version.number,
                filename=version.filename,
                **failure,
            )
    return version


def claim_stage(
    session: Session,
    version_id: str,
    stage: str,
    from_status: str,
    *,
    holder: str,
    lease_s: int,
) -> Version | None:
    """Enter ``stage`` from ``from_status``, or take it over from an attempt that is over.

    At-least-once delivery hands a step the same message more than once, sometimes at
    the same moment (an upload and its bucket event both ask for the parse). Re-entering
    a stage another attempt holds would do its work twice, so a version already in
    ``stage`` is claimed only when that attempt is over: it recorded an error (a retry
    of a failed attempt) or its lease expired (it crashed: a live attempt renews its
    lease with :class:`shared.pipeline.leases.Heartbeat`). The claimer holds the lease
    as ``holder`` for ``lease_s`` seconds.

    Returns:
        The version, or None if it is gone, past the stage, or held by a live attempt.
    """
    previous = store.claim_stage(
        session, version_id, stage, from_status, holder=holder, lease_s=lease_s
    )
    if previous is None:
        return None
    version = load_version(session, version_id)
    # Taking over the stage the version is already in adds no event.
    if version is not None and previous != stage:
        record_event(
            session,
            document_id=version.document_id,
            version_id=version.id,
            kb_id=version.kb_id,
            status=stage,
        )
    return version


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
            chunk_store.delete_version_chunks(session, version_id)
        return version


def record_transient_error(
    database: Database, version_id: str, step: str, error: BaseException
) -> None:
    """Remember the latest transient error so the dead-letter handler can report it."""
    message = f"{step}: {type(error).__name__}: {error}"[:2000]
    store.set_last_error(database, version_id, message)
