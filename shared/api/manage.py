"""Routes of the ``manage`` function: knowledge bases and documents."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared import documents
from shared.api import audit
from shared.api.access import (
    kb_level_of,
    readable_knowledge_bases,
    require_document,
    require_kb,
)
from shared.api.http import (
    EVENT_STREAM,
    ErrorDetail,
    Reply,
    Route,
    model_response,
    read_headers,
    read_json,
    read_query,
)
from shared.auth import ACTION_LEVEL, Principal, authorize
from shared.db import Database
from shared.errors import InvalidInputError, NotFoundError
from shared.knowledge_bases import (
    create_knowledge_base,
    update_knowledge_base,
)
from shared.pipeline.approval import approve_version
from shared.pipeline.removal import delete_knowledge_base
from shared.runtime import Runtime

# A stream ends once the document settles: ready, failed, or waiting for a person.
TERMINAL_EVENTS = frozenset({"ready", "failed", "awaiting_approval"})


class CreateKnowledgeBase(BaseModel):
    """Body of ``POST /v1/knowledge-bases``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    description: str = Field("", max_length=2000)
    embedding_model: str | None = None
    embedding_dimensions: int | None = Field(None, ge=1, le=16000)
    chunk_tokens: int | None = Field(None, ge=16, le=8192)
    chunk_overlap: int | None = Field(None, ge=0, le=4096)
    routing: Literal["auto", "names", "off"] = "auto"
    require_approval: bool = False


class UpdateKnowledgeBase(BaseModel):
    """Body of ``PATCH /v1/knowledge-bases/{id}``: the settings questions use."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=2000)
    routing: Literal["auto", "names", "off"] | None = None
    require_approval: bool | None = None


class UpdateDocument(BaseModel):
    """Body of ``PATCH /v1/documents/{id}``: a new title and/or the whole metadata."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=documents.MAX_TITLE_CHARS)
    metadata: dict[str, Any] | None = None


class ApproveDocument(BaseModel):
    """Body of ``POST /v1/documents/{id}/approve`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    version_id: str | None = Field(None, max_length=64)


# Positions in a listing and event ids are PostgreSQL bigints.
MAX_BIGINT = 2**63 - 1


class DocumentsQuery(BaseModel):
    """Query of ``GET /v1/knowledge-bases/{id}/documents``."""

    # Checked by the listing itself (invalid_status); the enum documents it.
    status: str | None = Field(
        None,
        description="Only documents in this status.",
        json_schema_extra={"enum": list(documents.STATUSES)},
    )
    archived: bool | None = Field(None, description="Only archived (true) or live (false) ones.")
    limit: int = Field(50, ge=1, le=500)
    page_token: str | None = Field(None, description="The previous page's next_page_token.")


class EventsQuery(BaseModel):
    """Query of ``GET /v1/documents/{id}/events`` (``Last-Event-ID`` wins over ``after``)."""

    after: int = Field(0, ge=0, le=MAX_BIGINT, description="Resume after this event id.")
    timeout: int | None = Field(None, ge=1, le=3600, description="Seconds before the end.")


class EventsHeaders(BaseModel):
    """Headers of ``GET /v1/documents/{id}/events``: an ``EventSource`` resuming sends one."""

    last_event_id: int | None = Field(
        None, alias="Last-Event-ID", ge=0, le=MAX_BIGINT, description="Resume after this event."
    )


class Health(Reply):
    """Body of ``GET /healthz``."""

    status: Literal["ok"]


class KnowledgeBaseReply(Reply):
    """A knowledge base and the settings its documents are processed with."""

    id: str
    workspace_id: str
    name: str
    description: str
    embedding_model: str
    embedding_dim: int
    chunk_tokens: int
    chunk_overlap: int
    routing: str
    require_approval: bool
    created_by: str
    created_at: str


class KnowledgeBaseList(Reply):
    """Body of ``GET /v1/knowledge-bases``."""

    knowledge_bases: list[KnowledgeBaseReply]


class DocumentReply(Reply):
    """A document: its state, counts and settings (as listed)."""

    id: str
    knowledge_base_id: str
    source_key: str | None
    filename: str | None
    title: str | None
    metadata: dict[str, Any]
    status: str
    error: str | None
    active_version_id: str | None
    latest_version_id: str | None
    page_count: int | None
    chunk_count: int | None
    created_at: str | None
    updated_at: str | None
    archived: bool
    archived_at: str | None
    archived_by: str | None


class VersionReply(Reply):
    """One version of a document: a file as processed once."""

    id: str
    number: int
    status: str
    checksum: str | None
    size_bytes: int | None
    content_type: str | None
    page_count: int | None
    chunk_count: int | None
    error: ErrorDetail | None
    embedding_model: str | None
    created_at: str | None
    stages: dict[str, str | None]
    approved_at: str | None
    approved_by: str | None


class DocumentDetail(DocumentReply):
    """A document with its versions, newest first, and the newest one's stage times."""

    versions: list[VersionReply]
    stages: dict[str, str | None]


class DocumentPage(Reply):
    """Body of ``GET /v1/knowledge-bases/{id}/documents``."""

    documents: list[DocumentReply]
    next_page_token: str | None


class Accepted(Reply):
    """The version a document became; processing goes on in the background."""

    document_id: str
    version_id: str
    status: str


class FileLink(Reply):
    """A short-lived signed URL to download a document's original file."""

    url: str
    method: Literal["GET"]
    filename: str | None
    content_type: str | None
    version_id: str
    expires_at: str


def healthz(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Liveness plus a database round trip."""
    runtime.database.ping()
    return model_response(Health, {"status": "ok"})


def post_knowledge_base(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Create a knowledge base."""
    authorize(principal, "admin")
    body = CreateKnowledgeBase.model_validate(read_json(request))
    audit.note(name=body.name)  # its id is not known before the row commits
    kb = create_knowledge_base(
        runtime.database,
        runtime.settings,
        name=body.name,
        principal=principal.id,
        description=body.description,
        embedding_model=body.embedding_model,
        embedding_dim=body.embedding_dimensions,
        chunk_tokens=body.chunk_tokens,
        chunk_overlap=body.chunk_overlap,
        routing=body.routing,
        workspace=principal.workspace,
        require_approval=body.require_approval,
    )
    return model_response(KnowledgeBaseReply, kb.to_json(), 201)


def get_knowledge_bases(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """List the workspace's knowledge bases."""
    kbs = readable_knowledge_bases(runtime.database, principal)
    return model_response(KnowledgeBaseList, {"knowledge_bases": [kb.to_json() for kb in kbs]})


def _decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError, OverflowError) as error:
        raise InvalidInputError(
            "page_token is not one this API issued", code="invalid_page_token"
        ) from error
    if not 0 <= offset <= MAX_BIGINT:
        raise InvalidInputError("page_token is not one this API issued", code="invalid_page_token")
    return offset


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def patch_knowledge_base(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str
) -> Response:
    """Change a knowledge base's description, routing or approval rule (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    body = UpdateKnowledgeBase.model_validate(read_json(request))
    updated = update_knowledge_base(
        runtime.database,
        kb.id,
        description=body.description,
        routing=body.routing,
        require_approval=body.require_approval,
    )
    if updated is None:
        raise NotFoundError(f"knowledge base {kb_id!r} not found", code="knowledge_base_not_found")
    return model_response(KnowledgeBaseReply, updated.to_json())


def delete_knowledge_base_route(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str
) -> Response:
    """Delete a knowledge base with its documents, objects, chat sessions and grants (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    delete_knowledge_base(runtime, kb)
    return Response(status=204)


def get_documents(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """List a knowledge base's documents (``status``, ``archived``, ``limit`` + ``page_token``)."""
    kb = require_kb(runtime.database, kb_id, principal)
    query = read_query(request, DocumentsQuery)
    offset = _decode_page_token(query.page_token)
    items, more = documents.list_documents(
        runtime.database,
        kb.id,
        status=query.status,
        limit=query.limit,
        offset=offset,
        archived=query.archived,
    )
    next_token = _encode_page_token(offset + query.limit) if more else None
    return model_response(DocumentPage, {"documents": items, "next_page_token": next_token})


def get_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """A document's status, stage timestamps, counts, error and versions."""
    require_document(runtime.database, document_id, principal)
    document = documents.get_document(runtime.database, document_id)
    if document is None:
        raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
    return model_response(DocumentDetail, document)


def delete_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Delete a document: its chunks, versions and objects (admins)."""
    require_document(runtime.database, document_id, principal, "admin")
    documents.delete_document(runtime, document_id)
    return Response(status=204)


def reindex_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Process the document again as a new version (e.g. after a settings change)."""
    require_document(runtime.database, document_id, principal, "write")
    registered = documents.reindex_document(runtime, document_id)
    return model_response(
        Accepted,
        {
            "document_id": registered.document_id,
            "version_id": registered.version_id,
            "status": registered.status,
        },
        202,
    )


def patch_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Change a document's title and/or metadata (editors)."""
    require_document(runtime.database, document_id, principal, "write")
    body = UpdateDocument.model_validate(read_json(request))
    if body.title is None and body.metadata is None:
        raise InvalidInputError("send a title, metadata or both", code="nothing_to_change")
    document = documents.edit_document(
        runtime.database,
        document_id,
        title=body.title,
        metadata=body.metadata,
        principal=principal.id,
    )
    return model_response(DocumentDetail, document)


def approve_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Make a version awaiting approval the active one (editors; default the newest waiting)."""
    require_document(runtime.database, document_id, principal, "write")
    body = ApproveDocument.model_validate(read_json(request) if request.data else {})
    approve_version(runtime, document_id, body.version_id, principal.id)
    document = documents.get_document(runtime.database, document_id)
    if document is None:
        raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
    return model_response(DocumentDetail, document)


def archive_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Archive a document: kept and listed, never retrieved (editors)."""
    require_document(runtime.database, document_id, principal, "write")
    document = documents.set_archived(runtime, document_id, principal.id, archived=True)
    return model_response(DocumentDetail, document)


def unarchive_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Restore an archived document to retrieval (editors)."""
    require_document(runtime.database, document_id, principal, "write")
    document = documents.set_archived(runtime, document_id, principal.id, archived=False)
    return model_response(DocumentDetail, document)


def document_file(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """A short-lived signed URL to download the document's original file (readers)."""
    kb_id = require_document(runtime.database, document_id, principal)
    # Those who may approve a waiting first version may read it before it is approved.
    may_approve = kb_level_of(runtime.database, principal, kb_id) >= ACTION_LEVEL["write"]
    link = documents.file_link(runtime, document_id, unapproved=may_approve)
    return model_response(FileLink, link)


def document_events(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Server-sent progress events; resumes after ``Last-Event-ID``; ends at ready/failed."""
    require_document(runtime.database, document_id, principal)
    query = read_query(request, EventsQuery)
    resumed = read_headers(request, EventsHeaders).last_event_id
    after = query.after if resumed is None else resumed
    # A client may ask for a shorter stream, never for one the function's timeout cuts off
    # (a longer request is shortened: the client reconnects with Last-Event-ID anyway).
    longest = runtime.settings.events_stream_s
    timeout_s = min(query.timeout or longest, longest)

    def still_readable() -> bool:
        try:
            require_document(runtime.database, document_id, principal)
        except NotFoundError:
            return False
        return True

    return Response(
        _event_stream(runtime.database, document_id, after, timeout_s, still_readable),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event_stream(
    database: Database,
    document_id: str,
    after: int,
    timeout_s: int,
    still_readable: Callable[[], bool],
) -> Iterator[str]:
    deadline = time.monotonic() + timeout_s
    last_beat = time.monotonic()
    yield "retry: 2000\n\n"
    while time.monotonic() < deadline:
        events = documents.events_after(database, document_id, after)
        # A stream outlives the check that opened it: access revoked meanwhile ends it
        # before another event goes out (checked per batch; events are few).
        if events and not still_readable():
            return
        for event in events:
            after = event["id"]
            yield f"id: {event['id']}\nevent: {event['status']}\ndata: {json.dumps(event)}\n\n"
        document = documents.get_document(database, document_id)
        if document is None:
            yield 'event: deleted\ndata: {"status": "deleted"}\n\n'
            return
        if not events and document["status"] in TERMINAL_EVENTS:
            return
        if time.monotonic() - last_beat > 15:
            last_beat = time.monotonic()
            yield ": keep-alive\n\n"
        time.sleep(0.25)


TAGS = ("knowledge bases",)
DOCUMENT_TAGS = ("documents",)

ROUTES = [
    Route("GET", "/healthz", healthz, public=True, responses={200: Health}, tags=("health",)),
    Route(
        "POST",
        "/v1/knowledge-bases",
        post_knowledge_base,
        audit="knowledge_base.create",
        body=CreateKnowledgeBase,
        responses={201: KnowledgeBaseReply},
        errors=frozenset({409}),
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/knowledge-bases",
        get_knowledge_bases,
        responses={200: KnowledgeBaseList},
        tags=TAGS,
    ),
    Route(
        "PATCH",
        "/v1/knowledge-bases/<kb_id>",
        patch_knowledge_base,
        audit="knowledge_base.update",
        body=UpdateKnowledgeBase,
        responses={200: KnowledgeBaseReply},
        tags=TAGS,
    ),
    Route(
        "DELETE",
        "/v1/knowledge-bases/<kb_id>",
        delete_knowledge_base_route,
        audit="knowledge_base.delete",
        responses={204: None},
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/knowledge-bases/<kb_id>/documents",
        get_documents,
        query=DocumentsQuery,
        responses={200: DocumentPage},
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "GET",
        "/v1/documents/<document_id>",
        get_document,
        responses={200: DocumentDetail},
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "DELETE",
        "/v1/documents/<document_id>",
        delete_document,
        audit="document.delete",
        responses={204: None},
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "POST",
        "/v1/documents/<document_id>/reindex",
        reindex_document,
        audit="document.reindex",
        responses={202: Accepted},
        errors=frozenset({409}),
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "GET",
        "/v1/documents/<document_id>/events",
        document_events,
        query=EventsQuery,
        headers=EventsHeaders,
        responses={200: EVENT_STREAM},
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "PATCH",
        "/v1/documents/<document_id>",
        patch_document,
        audit="document.update",
        body=UpdateDocument,
        responses={200: DocumentDetail},
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "POST",
        "/v1/documents/<document_id>/approve",
        approve_document,
        audit="document.approve",
        body=ApproveDocument,
        responses={200: DocumentDetail},
        errors=frozenset({409}),
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "POST",
        "/v1/documents/<document_id>/archive",
        archive_document,
        audit="document.archive",
        responses={200: DocumentDetail},
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "POST",
        "/v1/documents/<document_id>/unarchive",
        unarchive_document,
        audit="document.unarchive",
        responses={200: DocumentDetail},
        tags=DOCUMENT_TAGS,
    ),
    Route(
        "GET",
        "/v1/documents/<document_id>/file",
        document_file,
        responses={200: FileLink},
        tags=DOCUMENT_TAGS,
    ),
]
