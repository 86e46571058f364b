"""Documents: the statements over the ``documents`` table.

A document's versions, chunks and events have their own modules (``versions``,
``chunks``, ``events``); what reads a document with its latest version's state lives
here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session
from shared.ids import is_uuid


@dataclass(frozen=True)
class DocumentView:
    """A document as the API lists it, with its latest version's status and counts.

    ``metadata`` is as the driver returns jsonb (a dict, or its text).
    """

    id: str
    kb_id: str
    source_key: str
    filename: str
    title: str | None
    metadata: dict[str, Any] | str | None
    active_version_id: str | None
    latest_version_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    status: str
    error: str | None
    page_count: int | None
    chunk_count: int | None
    archived_at: dt.datetime | None
    archived_by: str | None
    source_id: str | None
    origin_url: str | None
    origin_revision: str | None


@dataclass(frozen=True)
class ActiveVersion:
    """The document's active version: both fields None while it has none."""

    version_id: str | None
    number: int | None


# A document's status is its latest version's, or awaiting_upload before the first one.
_DOCUMENT_SELECT = (
    "SELECT d.id::text AS id, d.kb_id::text AS kb_id, d.source_key, d.filename, d.title,"
    " d.metadata, d.active_version_id::text AS active_version_id,"
    " d.latest_version_id::text AS latest_version_id, d.created_at, d.updated_at,"
    " coalesce(lv.status, 'awaiting_upload') AS status, lv.error, lv.page_count,"
    " lv.chunk_count, d.archived_at, d.archived_by, d.source_id::text AS source_id,"
    " d.origin_url, d.origin_revision::text AS origin_revision"
    " FROM documents d LEFT JOIN document_versions lv ON lv.id = d.latest_version_id"
)


def merge_metadata(database: Database, document_id: str, metadata: dict[str, str]) -> None:
    """Add ``metadata`` to the document's, replacing values of the same keys."""
    database.run(
        "UPDATE documents SET metadata = metadata || CAST(:m AS jsonb) WHERE id = CAST(:d AS uuid)",
        m=json.dumps(metadata),
        d=document_id,
    )


def ensure_document(
    database: Database, kb_id: str, source_key: str, filename: str, principal: str
) -> str:
    """Return the id of the document at ``source_key`` in the knowledge base, creating it.

    Args:
        database: The pool (the insert and the read run in one transaction).
        kb_id: The knowledge base.
        source_key: Where the document comes from inside it (object path or file name).
        filename: The file name a new document gets.
        principal: Who creates it, if it is new.
    """
    with database.transaction() as session:
        session.run(
            "INSERT INTO documents (kb_id, source_key, filename, created_by)"
            " VALUES (CAST(:k AS uuid), :s, :f, :p) ON CONFLICT (kb_id, source_key) DO NOTHING",
            k=kb_id,
            s=source_key,
            f=filename,
            p=principal,
        )
        return str(find_document_id(session, kb_id, source_key))


def find_document_id(database: Database | Session, kb_id: str, source_key: str) -> str | None:
    """The id of the document at ``source_key`` in the knowledge base, if there is one."""
    value = database.scalar(
        "SELECT id::text FROM documents WHERE kb_id = CAST(:k AS uuid) AND source_key = :s",
        k=kb_id,
        s=source_key,
    )
    return None if value is None else str(value)


def document_kb(database: Database, document_id: str) -> str | None:
    """The knowledge base a document belongs to, or None (also for a non-UUID id)."""
    if not is_uuid(document_id):
        return None
    value = database.scalar(
        "SELECT kb_id::text FROM documents WHERE id = CAST(:d AS uuid)", d=document_id
    )
    return str(value) if value is not None else None


def lock_document(session: Session, document_id: str) -> str | None:
    """Lock the document's row for the transaction; return its knowledge base, or None."""
    value = session.scalar(
        "SELECT kb_id::text FROM documents WHERE id = CAST(:d AS uuid) FOR UPDATE",
        d=document_id,
    )
    return None if value is None else str(value)


def lock_active_version(session: Session, document_id: str) -> ActiveVersion | None:
    """Lock the document's row; return its active version, or None if it is gone.

    Args:
        session: A session inside the transaction the lock lasts for.
        document_id: The document.
    """
    return session.record(
        ActiveVersion,
        "SELECT v.id::text AS version_id, v.number FROM documents d"
        " LEFT JOIN document_versions v ON v.id = d.active_version_id"
        " WHERE d.id = CAST(:d AS uuid) FOR UPDATE OF d",
        d=document_id,
    )


def document_exists(database: Database, document_id: str) -> bool:
    """Whether the document exists (in a knowledge base that does)."""
    found = database.scalar(
        "SELECT 1 FROM documents d JOIN knowledge_bases k ON k.id = d.kb_id"
        " WHERE d.id = CAST(:d AS uuid)",
        d=document_id,
    )
    return found is not None


def set_title(session: Session, document_id: str, title: str) -> None:
    """Set the document's title from its parsed text, unless someone edited the title."""
    session.run(
        "UPDATE documents SET title = :title WHERE id = CAST(:d AS uuid)"
        " AND title_edited_by IS NULL",
        title=title,
        d=document_id,
    )


def edit_document(
    session: Session,
    document_id: str,
    *,
    title: str | None,
    metadata: dict[str, Any] | None,
    principal: str,
) -> None:
    """Replace the document's title and/or metadata (None keeps the stored value).

    An edited title is kept over the titles later versions' parses find.
    """
    session.run(
        "UPDATE documents SET title = coalesce(:title, title),"
        " title_edited_by = CASE WHEN CAST(:title AS text) IS NULL THEN title_edited_by"
        " ELSE :p END,"
        " metadata = coalesce(CAST(:m AS jsonb), metadata), updated_at = now()"
        " WHERE id = CAST(:d AS uuid)",
        title=title,
        m=None if metadata is None else json.dumps(metadata),
        p=principal,
        d=document_id,
    )


def set_archived(session: Session, document_id: str, principal: str | None) -> bool:
    """Archive the document (``principal`` given) or restore it (None).

    Returns:
        True if the document changed (archiving an archived document changes nothing).
    """
    changed = session.scalar(
        "UPDATE documents SET archived_at = CASE WHEN CAST(:p AS text) IS NULL THEN NULL"
        " ELSE now() END, archived_by = :p, updated_at = now()"
        " WHERE id = CAST(:d AS uuid)"
        " AND (archived_at IS NULL) = (CAST(:p AS text) IS NOT NULL) RETURNING id",
        p=principal,
        d=document_id,
    )
    return changed is not None


def knowledge_base_document_ids(database: Database, kb_id: str) -> list[str]:
    """The ids of every document of the knowledge base."""
    return [
        str(value)
        for value in database.scalars(
            "SELECT id::text FROM documents WHERE kb_id = CAST(:k AS uuid) ORDER BY id", k=kb_id
        )
    ]


def set_latest_version(session: Session, document_id: str, version_id: str) -> None:
    """Point the document at its newest version (the one its status follows)."""
    session.run(
        "UPDATE documents SET latest_version_id = CAST(:v AS uuid), updated_at = now()"
        " WHERE id = CAST(:d AS uuid)",
        v=version_id,
        d=document_id,
    )


def set_active_version(session: Session, document_id: str, version_id: str) -> None:
    """Make ``version_id`` the version readers see of the document."""
    session.run(
        "UPDATE documents SET active_version_id = CAST(:v AS uuid), updated_at = now()"
        " WHERE id = CAST(:d AS uuid)",
        v=version_id,
        d=document_id,
    )


def clear_version_pointers(session: Session, document_id: str) -> None:
    """Unset the document's active and latest version, before its versions are deleted."""
    session.run(
        "UPDATE documents SET active_version_id = NULL, latest_version_id = NULL"
        " WHERE id = CAST(:d AS uuid)",
        d=document_id,
    )


def delete_document_row(session: Session, document_id: str) -> None:
    """Delete the document's own row (its versions, chunks and events go first)."""
    session.run("DELETE FROM documents WHERE id = CAST(:d AS uuid)", d=document_id)


def list_document_views(
    database: Database,
    kb_id: str,
    *,
    status: str | None,
    limit: int,
    offset: int,
    archived: bool | None = None,
) -> list[DocumentView]:
    """A page of the knowledge base's documents, newest first.

    Args:
        database: The pool.
        kb_id: The knowledge base.
        status: Only documents in this status (their latest version's), or all.
        limit: At most this many documents.
        offset: After skipping this many.
        archived: Only archived (True) or only unarchived (False) documents, or all.
    """
    return database.records(
        DocumentView,
        _DOCUMENT_SELECT + " WHERE d.kb_id = CAST(:k AS uuid)"
        " AND (CAST(:s AS text) IS NULL OR coalesce(lv.status, 'awaiting_upload') = :s)"
        " AND (CAST(:a AS boolean) IS NULL OR (d.archived_at IS NOT NULL) = CAST(:a AS boolean))"
        " ORDER BY d.created_at DESC, d.id LIMIT :lim OFFSET :off",
        k=kb_id,
        s=status,
        a=archived,
        lim=limit,
        off=offset,
    )


def get_document_view(database: Database, document_id: str) -> DocumentView | None:
    """The document with its latest version's status and counts, or None."""
    if not is_uuid(document_id):
        return None
    return database.record(
        DocumentView, _DOCUMENT_SELECT + " WHERE d.id = CAST(:d AS uuid)", d=document_id
    )


def has_documents(session: Session, kb_id: str) -> bool:
    """Whether the knowledge base has any document."""
    found = session.scalar(
        "SELECT 1 FROM documents WHERE kb_id = CAST(:k AS uuid) LIMIT 1", k=kb_id
    )
    return found is not None
