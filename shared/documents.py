"""Documents as the API shows them: listing, detail, progress events, delete, reindex."""

from __future__ import annotations

import json
from typing import Any

from shared.db import Database
from shared.errors import ConflictError, InvalidInputError, NotFoundError
from shared.pipeline.ingest import Registered, register_object
from shared.pipeline.removal import delete_document
from shared.runtime import Runtime
from shared.store import documents as document_store
from shared.store import events as event_store
from shared.store import versions as version_store
from shared.store.documents import DocumentView
from shared.store.versions import STAGE_COLUMNS, VersionView

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


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _json_object(value: dict[str, Any] | str | None) -> dict[str, Any]:
    """A jsonb object as the driver returned it (a dict, or its text) as a dict."""
    return value if isinstance(value, dict) else dict(json.loads(value or "{}"))


def _version_json(version: VersionView) -> dict[str, Any]:
    stages = {column[:-3]: _iso(getattr(version, column)) for column in STAGE_COLUMNS}
    return {
        "id": version.id,
        "number": version.number,
        "status": version.status,
        "checksum": version.checksum,
        "size_bytes": version.size_bytes,
        "content_type": version.content_type,
        "page_count": version.page_count,
        "chunk_count": version.chunk_count,
        "error": (
            {"code": version.error_code, "message": version.error} if version.error else None
        ),
        "embedding_model": version.embedding_model,
        "created_at": _iso(version.created_at),
        "stages": stages,
    }


def _document_json(document: DocumentView) -> dict[str, Any]:
    return {
        "id": document.id,
        "knowledge_base_id": document.kb_id,
        "source_key": document.source_key,
        "filename": document.filename,
        "title": document.title,
        "metadata": _json_object(document.metadata),
        "status": document.status,
        "error": document.error,
        "active_version_id": document.active_version_id,
        "latest_version_id": document.latest_version_id,
        "page_count": document.page_count,
        "chunk_count": document.chunk_count,
        "created_at": _iso(document.created_at),
        "updated_at": _iso(document.updated_at),
    }


def list_documents(
    database: Database, kb_id: str, *, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the knowledge base's documents, newest first; and whether more follow."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(
            f"status must be one of {', '.join(STATUSES)}", code="invalid_status"
        )
    page = document_store.list_document_views(
        database, kb_id, status=status, limit=limit + 1, offset=offset
    )
    return [_document_json(document) for document in page[:limit]], len(page) > limit


def get_document(database: Database, document_id: str) -> dict[str, Any] | None:
    """The document with its status, stage timestamps, counts, error and versions."""
    view = document_store.get_document_view(database, document_id)
    if view is None:
        return None
    document = _document_json(view)
    versions = version_store.list_version_views(database, document_id)
    document["versions"] = [_version_json(version) for version in versions]
    latest = document["versions"][0] if document["versions"] else None
    document["stages"] = latest["stages"] if latest else {}
    return document


def document_kb(database: Database, document_id: str) -> str | None:
    """The knowledge base a document belongs to (for authorization), or None."""
    return document_store.document_kb(database, document_id)


def events_after(database: Database, document_id: str, after_id: int) -> list[dict[str, Any]]:
    """The document's progress events with id greater than ``after_id``, oldest first."""
    return [
        {
            "id": event.id,
            "version_id": event.version_id,
            "status": event.status,
            "detail": _json_object(event.detail),
            "at": _iso(event.created_at),
        }
        for event in event_store.events_after(database, document_id, after_id)
    ]


def reindex_document(runtime: Runtime, document_id: str) -> Registered:
    """Run the pipeline again on the document's current object as a new version."""
    current = version_store.current_object(runtime.database, document_id)
    if current is None:
        raise ConflictError("the document has no stored version yet", code="nothing_to_reindex")
    info = runtime.objects.stat(current.object_bucket, current.object_name)
    if info is None:
        raise ConflictError(
            f"the source object gs://{current.object_bucket}/{current.object_name} is gone",
            code="source_missing",
        )
    registered = register_object(runtime, document_id, info, force=True)
    if registered is None:
        raise NotFoundError("document not found", code="not_found")
    return registered
