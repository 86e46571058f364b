"""Documents as the API shows them: listing, detail, progress events, delete, reindex."""

from __future__ import annotations

import json
from typing import Any

from shared.db import Database
from shared.errors import ConflictError, InvalidInputError, NotFoundError
from shared.ids import is_uuid
from shared.pipeline.ingest import Registered, register_object
from shared.pipeline.removal import delete_document
from shared.runtime import Runtime

__all__ = [
    "delete_document",
    "document_kb",
    "events_after",
    "get_document",
    "list_documents",
    "reindex_document",
]

STATUSES = (
    "awaiting_upload", "received", "parsing", "chunking", "embedding", "indexing",
    "ready", "failed", "superseded",
)  # fmt: skip
STAGE_COLUMNS = (
    "received_at", "parsing_at", "chunking_at", "embedding_at", "indexing_at", "ready_at",
    "failed_at",
)  # fmt: skip

_VERSION_SELECT = (
    "SELECT v.id::text, v.number, v.status, v.checksum, v.size_bytes, v.content_type,"
    " v.page_count, v.chunk_count, v.error_code, v.error, v.embedding_model, v.created_at,"
    + ", ".join(f"v.{column}" for column in STAGE_COLUMNS)
    + " FROM document_versions v"
)
# A document's status is its latest version's, or awaiting_upload before the first one.
_DOCUMENT_SELECT = (
    "SELECT d.id::text, d.kb_id::text, d.source_key, d.filename, d.title, d.metadata,"
    " d.active_version_id::text, d.latest_version_id::text, d.created_at, d.updated_at,"
    " coalesce(lv.status, 'awaiting_upload') AS status, lv.error, lv.page_count,"
    " lv.chunk_count"
    " FROM documents d LEFT JOIN document_versions lv ON lv.id = d.latest_version_id"
)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _version_json(row: tuple[Any, ...]) -> dict[str, Any]:
    (vid, number, status, checksum, size, ctype, pages, chunks, code, error, model, created) = row[
        :12
    ]
    stages = {
        column[:-3]: _iso(value) for column, value in zip(STAGE_COLUMNS, row[12:], strict=True)
    }
    return {
        "id": vid,
        "number": number,
        "status": status,
        "checksum": checksum,
        "size_bytes": size,
        "content_type": ctype,
        "page_count": pages,
        "chunk_count": chunks,
        "error": {"code": code, "message": error} if error else None,
        "embedding_model": model,
        "created_at": _iso(created),
        "stages": stages,
    }


def _document_json(row: tuple[Any, ...]) -> dict[str, Any]:
    (did, kb_id, source_key, filename, title, metadata, active, latest, created, updated,
     status, error, pages, chunks) = row  # fmt: skip
    return {
        "id": did,
        "knowledge_base_id": kb_id,
        "source_key": source_key,
        "filename": filename,
        "title": title,
        "metadata": metadata if isinstance(metadata, dict) else json.loads(metadata or "{}"),
        "status": status,
        "error": error,
        "active_version_id": active,
        "latest_version_id": latest,
        "page_count": pages,
        "chunk_count": chunks,
        "created_at": _iso(created),
        "updated_at": _iso(updated),
    }


def list_documents(
    database: Database, kb_id: str, *, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the knowledge base's documents, newest first; and whether more follow."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(
            f"status must be one of {', '.join(STATUSES)}", code="invalid_status"
        )
    rows = database.run(
        _DOCUMENT_SELECT + " WHERE d.kb_id = CAST(:k AS uuid)"
        " AND (CAST(:s AS text) IS NULL OR coalesce(lv.status, 'awaiting_upload') = :s)"
        " ORDER BY d.created_at DESC, d.id LIMIT :lim OFFSET :off",
        k=kb_id,
        s=status,
        lim=limit + 1,
        off=offset,
    )
    return [_document_json(row) for row in rows[:limit]], len(rows) > limit


def get_document(database: Database, document_id: str) -> dict[str, Any] | None:
    """The document with its status, stage timestamps, counts, error and versions."""
    if not is_uuid(document_id):
        return None
    row = database.one(_DOCUMENT_SELECT + " WHERE d.id = CAST(:d AS uuid)", d=document_id)
    if row is None:
        return None
    document = _document_json(row)
    versions = database.run(
        _VERSION_SELECT + " WHERE v.document_id = CAST(:d AS uuid) ORDER BY v.number DESC",
        d=document_id,
    )
    document["versions"] = [_version_json(version) for version in versions]
    latest = document["versions"][0] if document["versions"] else None
    document["stages"] = latest["stages"] if latest else {}
    return document


def document_kb(database: Database, document_id: str) -> str | None:
    """The knowledge base a document belongs to (for authorization), or None."""
    if not is_uuid(document_id):
        return None
    value = database.scalar(
        "SELECT kb_id::text FROM documents WHERE id = CAST(:d AS uuid)", d=document_id
    )
    return str(value) if value is not None else None


def events_after(database: Database, document_id: str, after_id: int) -> list[dict[str, Any]]:
    """The document's progress events with id greater than ``after_id``, oldest first."""
    rows = database.run(
        "SELECT id, version_id::text, status, detail, created_at FROM document_events"
        " WHERE document_id = CAST(:d AS uuid) AND id > :after ORDER BY id LIMIT 500",
        d=document_id,
        after=after_id,
    )
    return [
        {
            "id": row[0],
            "version_id": row[1],
            "status": row[2],
            "detail": row[3] if isinstance(row[3], dict) else json.loads(row[3] or "{}"),
            "at": _iso(row[4]),
        }
        for row in rows
    ]


def reindex_document(runtime: Runtime, document_id: str) -> Registered:
    """Run the pipeline again on the document's current object as a new version."""
    database = runtime.database
    row = database.one(
        "SELECT v.object_bucket, v.object_name FROM documents d JOIN document_versions v"
        " ON v.id = coalesce(d.active_version_id, d.latest_version_id)"
        " WHERE d.id = CAST(:d AS uuid)",
        d=document_id,
    )
    if row is None:
        raise ConflictError("the document has no stored version yet", code="nothing_to_reindex")
    info = runtime.objects.stat(row[0], row[1])
    if info is None:
        raise ConflictError(
            f"the source object gs://{row[0]}/{row[1]} is gone", code="source_missing"
        )
    registered = register_object(runtime, document_id, info, force=True)
    if registered is None:
        raise NotFoundError("document not found", code="not_found")
    return registered
