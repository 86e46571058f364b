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
from shared.api.http import Route, int_arg, json_response, read_json
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


def healthz(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Liveness plus a database round trip."""
    runtime.database.ping()
    return json_response({"status": "ok"})


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
    return json_response(kb.to_json(), 201)


def get_knowledge_bases(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """List the workspace's knowledge bases."""
    kbs = readable_knowledge_bases(runtime.database, principal)
    return json_response({"knowledge_bases": [kb.to_json() for kb in kbs]})


# Positions in a listing and event ids are PostgreSQL bigints.
MAX_BIGINT = 2**63 - 1


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


def _bool_arg(request: Request, name: str) -> bool | None:
    """A ``true``/``false`` query parameter, or None when absent (400 otherwise)."""
    raw = (request.args.get(name) or "").lower()
    if not raw:
        return None
    if raw not in ("true", "false"):
        raise InvalidInputError(f"{name} must be true or false", code="invalid_parameter")
    return raw == "true"


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
    return json_response(updated.to_json())


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
    limit = int_arg(request, "limit", 50, 1, 500)
    offset = _decode_page_token(request.args.get("page_token"))
    items, more = documents.list_documents(
        runtime.database,
        kb.id,
        status=request.args.get("status") or None,
        limit=limit,
        offset=offset,
        archived=_bool_arg(request, "archived"),
    )
    body: dict[str, Any] = {"documents": items}
    body["next_page_token"] = _encode_page_token(offset + limit) if more else None
    return json_response(body)


def get_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """A document's status, stage timestamps, counts, error and versions."""
    require_document(runtime.database, document_id, principal)
    document = documents.get_document(runtime.database, document_id)
    if document is None:
        raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
    return json_response(document)


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
    return json_response(
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
    return json_response(document)


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
    return json_response(document)


def archive_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Archive a document: kept and listed, never retrieved (editors)."""
    require_document(runtime.database, document_id, principal, "write")
    document = documents.set_archived(runtime, document_id, principal.id, archived=True)
    return json_response(document)


def unarchive_document(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Restore an archived document to retrieval (editors)."""
    require_document(runtime.database, document_id, principal, "write")
    document = documents.set_archived(runtime, document_id, principal.id, archived=False)
    return json_response(document)


def document_file(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """A short-lived signed URL to download the document's original file (readers)."""
    kb_id = require_document(runtime.database, document_id, principal)
    # Those who may approve a waiting first version may read it before it is approved.
    may_approve = kb_level_of(runtime.database, principal, kb_id) >= ACTION_LEVEL["write"]
    return json_response(documents.file_link(runtime, document_id, unapproved=may_approve))


def document_events(
    runtime: Runtime, request: Request, principal: Principal, document_id: str
) -> Response:
    """Server-sent progress events; resumes after ``Last-Event-ID``; ends at ready/failed."""
    require_document(runtime.database, document_id, principal)
    try:
        after = int(request.headers.get("Last-Event-ID") or request.args.get("after") or 0)
    except ValueError as error:
        raise InvalidInputError(
            "Last-Event-ID must be an integer", code="invalid_parameter"
        ) from error
    if not 0 <= after <= MAX_BIGINT:
        raise InvalidInputError(
            f"Last-Event-ID must be between 0 and {MAX_BIGINT}", code="invalid_parameter"
        )
    # A client may ask for a shorter stream, never for one the function's timeout cuts off
    # (a longer request is shortened: the client reconnects with Last-Event-ID anyway).
    longest = runtime.settings.events_stream_s
    timeout_s = min(int_arg(request, "timeout", longest, 1, 3600), longest)

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


ROUTES = [
    Route("GET", "/healthz", healthz, public=True),
    Route("POST", "/v1/knowledge-bases", post_knowledge_base, audit="knowledge_base.create"),
    Route("GET", "/v1/knowledge-bases", get_knowledge_bases),
    Route(
        "PATCH", "/v1/knowledge-bases/<kb_id>", patch_knowledge_base, audit="knowledge_base.update"
    ),
    Route(
        "DELETE",
        "/v1/knowledge-bases/<kb_id>",
        delete_knowledge_base_route,
        audit="knowledge_base.delete",
    ),
    Route("GET", "/v1/knowledge-bases/<kb_id>/documents", get_documents),
    Route("GET", "/v1/documents/<document_id>", get_document),
    Route("DELETE", "/v1/documents/<document_id>", delete_document, audit="document.delete"),
    Route(
        "POST", "/v1/documents/<document_id>/reindex", reindex_document, audit="document.reindex"
    ),
    Route("GET", "/v1/documents/<document_id>/events", document_events),
    Route("PATCH", "/v1/documents/<document_id>", patch_document, audit="document.update"),
    Route(
        "POST", "/v1/documents/<document_id>/approve", approve_document, audit="document.approve"
    ),
    Route(
        "POST", "/v1/documents/<document_id>/archive", archive_document, audit="document.archive"
    ),
    Route(
        "POST",
        "/v1/documents/<document_id>/unarchive",
        unarchive_document,
        audit="document.unarchive",
    ),
    Route("GET", "/v1/documents/<document_id>/file", document_file),
]
