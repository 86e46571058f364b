"""Documents as the API shows them: listing, detail, events, edits, archiving, files.

Delete and reindex hand over to the pipeline (``removal``, ``ingest``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from shared.db import Database
from shared.errors import ConflictError, InvalidInputError, NotFoundError
from shared.pipeline.ingest import Registered, register_object
from shared.pipeline.outbox import record_document_event, relay_after_commit
from shared.pipeline.removal import delete_document
from shared.runtime import Runtime
from shared.storage import signing_credentials
from shared.store import documents as document_store
from shared.store import events as event_store
from shared.store import versions as version_store
from shared.store.documents import DocumentView
from shared.store.versions import STAGE_COLUMNS, VersionView

__all__ = [
    "delete_document",
    "document_kb",
    "edit_document",
    "events_after",
    "file_link",
    "get_document",
    "list_documents",
    "reindex_document",
    "set_archived",
]

STATUSES = (
    "awaiting_upload", "received", "parsing", "chunking", "embedding", "indexing",
    "awaiting_approval", "ready", "failed", "superseded",
)  # fmt: skip
# Bounds of a document's metadata: it is matched by retrieval's filters (JSON
# containment) and returned with every listing, so it stays small.
MAX_METADATA_BYTES = 8192
MAX_METADATA_KEYS = 64
MAX_TITLE_CHARS = 500


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
        "approved_at": _iso(version.approved_at),
        "approved_by": version.approved_by,
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
        "archived": document.archived_at is not None,
        "archived_at": _iso(document.archived_at),
        "archived_by": document.archived_by,
        "origin": origin_json(document.source_id, document.origin_url, document.origin_revision),
    }


def origin_json(
    source_id: str | None, url: str | None, revision: str | None
) -> dict[str, Any] | None:
    """Where a source's document came from (its source, URL and revision), else None."""
    if source_id is None and url is None:
        return None
    return {"source_id": source_id, "url": url, "revision": _json_object(revision)}


def list_documents(
    database: Database,
    kb_id: str,
    *,
    status: str | None,
    limit: int,
    offset: int,
    archived: bool | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the knowledge base's documents, newest first; and whether more follow.

    ``archived`` keeps only archived (True) or unarchived (False) documents.
    """
    if status is not None and status not in STATUSES:
        raise InvalidInputError(
            f"status must be one of {', '.join(STATUSES)}", code="invalid_status"
        )
    page = document_store.list_document_views(
        database, kb_id, status=status, limit=limit + 1, offset=offset, archived=archived
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


def validate_metadata(metadata: Any) -> dict[str, Any]:
    """``metadata`` if it is a JSON object within the bounds, else InvalidInputError."""
    if not isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a JSON object", code="invalid_metadata")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidInputError(
            f"metadata may have at most {MAX_METADATA_KEYS} keys", code="invalid_metadata"
        )
    if len(json.dumps(metadata).encode()) > MAX_METADATA_BYTES:
        raise InvalidInputError(
            f"metadata may be at most {MAX_METADATA_BYTES:,} bytes of JSON",
            code="invalid_metadata",
        )
    return metadata


def edit_document(
    database: Database,
    document_id: str,
    *,
    title: str | None,
    metadata: dict[str, Any] | None,
    principal: str,
) -> dict[str, Any]:
    """Replace the document's title and/or metadata; return the document.

    The metadata replaces the stored object whole (send it all); filters of retrieval
    see it from the next question on. The change is an ``edited`` event.

    Raises:
        InvalidInputError: An empty or long title, or metadata that is not a JSON object
            within the bounds.
        NotFoundError: The document is gone.
    """
    if title is not None:
        title = title.strip()
        if not title or len(title) > MAX_TITLE_CHARS:
            raise InvalidInputError(
                f"title must be 1-{MAX_TITLE_CHARS} characters", code="invalid_title"
            )
    if metadata is not None:
        metadata = validate_metadata(metadata)
    with database.transaction() as session:
        kb_id = document_store.lock_document(session, document_id)
        if kb_id is None:
            raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
        document_store.edit_document(
            session, document_id, title=title, metadata=metadata, principal=principal
        )
        changed = [
            name for name, value in (("title", title), ("metadata", metadata)) if value is not None
        ]
        event_store.record_event(
            session,
            document_id=document_id,
            version_id=None,
            kb_id=kb_id,
            status="edited",
            detail={"by": principal, "fields": changed},
        )
    return _existing(database, document_id)


def set_archived(
    runtime: Runtime, document_id: str, principal: str, *, archived: bool
) -> dict[str, Any]:
    """Archive the document (no read path sees it) or restore it; return the document.

    Archiving keeps every version, chunk and object. Each change is an ``archived`` or
    ``unarchived`` event; repeating one changes nothing and adds no event.

    Raises:
        NotFoundError: The document is gone.
    """
    database = runtime.database
    with database.transaction() as session:
        kb_id = document_store.lock_document(session, document_id)
        if kb_id is None:
            raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
        if document_store.set_archived(session, document_id, principal if archived else None):
            event_store.record_event(
                session,
                document_id=document_id,
                version_id=None,
                kb_id=kb_id,
                status="archived" if archived else "unarchived",
                detail={"by": principal},
            )
            kind = "document.archived" if archived else "document.unarchived"
            record_document_event(session, kind, document_id, by=principal)
    relay_after_commit(runtime)
    return _existing(database, document_id)


def _existing(database: Database, document_id: str) -> dict[str, Any]:
    document = get_document(database, document_id)
    if document is None:
        raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
    return document


def file_link(runtime: Runtime, document_id: str, *, unapproved: bool) -> dict[str, Any]:
    """A short-lived signed URL to download the document's original file.

    The file is the active version's; a caller who may approve (``unapproved``) gets the
    latest version's while the document has no active one (its first version awaits
    approval).

    Raises:
        NotFoundError: The document has no stored file the caller may read.
    """
    found = version_store.document_file(runtime.database, document_id, active_only=not unapproved)
    if found is None:
        raise NotFoundError("the document has no file to download yet", code="file_not_found")
    settings = runtime.settings
    url = runtime.objects.signed_download_url(
        found.object_bucket,
        found.object_name,
        ttl_s=settings.download_url_ttl_s,
        filename=found.filename,
        signing_credentials=signing_credentials(settings.signing_key_file),
    )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.download_url_ttl_s)
    return {
        "url": url,
        "method": "GET",
        "filename": found.filename,
        "content_type": found.content_type,
        "version_id": found.version_id,
        "expires_at": expires.isoformat(),
    }
