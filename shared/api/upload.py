"""Routes of the ``upload`` function: multipart uploads and signed upload URLs."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared.api.access import require_kb
from shared.api.http import Reply, Route, model_response, read_json
from shared.api.manage import DocumentPage, DocumentsQuery, get_documents
from shared.api.text_input import check_json
from shared.auth import Principal
from shared.db import Database
from shared.errors import ConflictError, InvalidInputError, TooLargeError
from shared.filenames import display_name
from shared.paths import upload_object_name
from shared.pipeline.ingest import register_object
from shared.runtime import Runtime
from shared.storage import md5_checksum, signing_credentials
from shared.store.documents import ensure_document, merge_metadata
from shared.store.uploads import record_intent
from shared.trace_context import propagation


class SignedUploadRequest(BaseModel):
    """Body of ``POST /v1/knowledge-bases/{kb_id}/uploads``."""

    model_config = ConfigDict(extra="forbid")

    # Any name a file system allows fits; the stored names are bounded (shared.filenames).
    filename: str = Field(min_length=1, max_length=4096)
    content_type: str = Field(min_length=3, max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+")
    size: int = Field(ge=1)
    metadata: dict[str, str] = Field(default_factory=dict)


class UploadForm(BaseModel):
    """Body of ``POST /v1/knowledge-bases/{kb_id}/documents`` (``multipart/form-data``)."""

    file: bytes = Field(description="The document (its file name is kept).")
    metadata: str | None = Field(
        None, description="A flat JSON object of string, number or boolean values."
    )


class UploadAccepted(Reply):
    """The version an uploaded file became; processing goes on in the background."""

    document_id: str
    version_id: str
    status: str
    duplicate: bool = Field(description="The same bytes as the active version: nothing new.")


class SignedUpload(Reply):
    """Where to PUT a large file, and how; its arrival starts the pipeline."""

    document_id: str
    upload_url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    object: str
    expires_at: str
    status: Literal["awaiting_upload"]


def _metadata(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            "metadata must be a JSON object", code="invalid_metadata"
        ) from error
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) for v in value.values()
    ):
        raise InvalidInputError("metadata must be a flat JSON object", code="invalid_metadata")
    check_json(value, "metadata")
    return {str(key)[:100]: str(item)[:1000] for key, item in value.items()}


def _set_metadata(database: Database, document_id: str, metadata: dict[str, str]) -> None:
    if metadata:
        merge_metadata(database, document_id, metadata)


def post_document(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """Accept a small file as multipart field ``file``; 202 with the version it became."""
    settings = runtime.settings
    kb = require_kb(runtime.database, kb_id, principal, "write")
    limit = settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise TooLargeError(
            f"uploads are limited to {limit:,} bytes here; request a signed URL from"
            " /v1/knowledge-bases/{kb_id}/uploads for larger files",
            code="payload_too_large",
        )
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInputError(
            "send the document as multipart/form-data field 'file'", code="missing_file"
        )
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(f"uploads are limited to {limit:,} bytes", code="payload_too_large")
    filename = display_name(upload.filename)
    database = runtime.database
    document_id = ensure_document(database, kb.id, filename, filename, principal.id)
    _set_metadata(database, document_id, _metadata(request.form.get("metadata")))
    info = runtime.objects.upload_bytes(
        settings.upload_bucket,
        upload_object_name(document_id, md5_checksum(data)[4:20], filename),
        data,
        content_type=upload.mimetype or "application/octet-stream",
        # The bucket's event for this object continues the upload's trace.
        metadata={"document-id": document_id, "uploaded-by": principal.id, **propagation()},
    )
    registered = register_object(runtime, document_id, info, declared_type=upload.mimetype)
    if registered is None:
        runtime.objects.delete(info.bucket, info.name)
        raise ConflictError("the document was deleted during the upload", code="document_deleted")
    return model_response(
        UploadAccepted,
        {
            "document_id": registered.document_id,
            "version_id": registered.version_id,
            "status": registered.status,
            "duplicate": not registered.created,
        },
        202,
    )


def post_upload(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """A V4 signed URL to PUT a large file to; its finalize event starts the pipeline."""
    settings = runtime.settings
    kb = require_kb(runtime.database, kb_id, principal, "write")
    body = SignedUploadRequest.model_validate(read_json(request))
    max_bytes = runtime.parse_limits.max_bytes
    if body.size > max_bytes:
        raise TooLargeError(
            f"documents are limited to {max_bytes:,} bytes", code="payload_too_large"
        )
    filename = display_name(body.filename)
    database = runtime.database
    document_id = ensure_document(database, kb.id, filename, filename, principal.id)
    _set_metadata(database, document_id, body.metadata)
    object_name = upload_object_name(document_id, uuid.uuid4().hex[:16], filename)
    url = runtime.objects.signed_upload_url(
        settings.upload_bucket,
        object_name,
        content_type=body.content_type,
        ttl_s=settings.signed_url_ttl_s,
        signing_credentials=signing_credentials(settings.signing_key_file),
    )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.signed_url_ttl_s)
    # Remembered so the sweeper can expire it if the file never comes.
    record_intent(
        database,
        object_name=object_name,
        document_id=document_id,
        kb_id=kb.id,
        created_by=principal.id,
        ttl_s=settings.signed_url_ttl_s,
    )
    return model_response(
        SignedUpload,
        {
            "document_id": document_id,
            "upload_url": url,
            "method": "PUT",
            "headers": {"Content-Type": body.content_type},
            "object": f"gs://{settings.upload_bucket}/{object_name}",
            "expires_at": expires.isoformat(),
            "status": "awaiting_upload",
        },
        201,
    )


TAGS = ("documents",)

ROUTES = [
    Route(
        "POST",
        "/v1/knowledge-bases/<kb_id>/documents",
        post_document,
        audit="document.upload",
        body=UploadForm,
        body_media_type="multipart/form-data",
        responses={202: UploadAccepted},
        errors=frozenset({409, 413}),
        tags=TAGS,
    ),
    # The load balancer sends this whole path to the upload function, listing included.
    Route(
        "GET",
        "/v1/knowledge-bases/<kb_id>/documents",
        get_documents,
        query=DocumentsQuery,
        responses={200: DocumentPage},
        tags=TAGS,
    ),
    Route(
        "POST",
        "/v1/knowledge-bases/<kb_id>/uploads",
        post_upload,
        audit="document.upload_url",
        body=SignedUploadRequest,
        responses={201: SignedUpload},
        errors=frozenset({413}),
        tags=TAGS,
    ),
]
