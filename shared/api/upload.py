"""Routes of the ``upload`` function: multipart uploads and signed upload URLs."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import unicodedata
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared import storage
from shared.api.access import require_kb
from shared.api.http import Route, json_response, read_json
from shared.api.manage import get_documents
from shared.auth import Principal
from shared.config import get_parse_limits, get_settings
from shared.db import get_database
from shared.errors import ApiError
from shared.pipeline.ingest import ensure_document, register_object, upload_object_name
from shared.runtime import Runtime

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


class SignedUploadRequest(BaseModel):
    """Body of ``POST /v1/knowledge-bases/{kb_id}/uploads``."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=3, max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+")
    size: int = Field(ge=1)
    metadata: dict[str, str] = Field(default_factory=dict)


def clean_filename(raw: str | None) -> str:
    """A safe file name: the base name, normalised, without control or path characters."""
    name = unicodedata.normalize("NFC", (raw or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).strip().strip(".")
    if not name:
        raise ApiError(400, "invalid_filename", "the file needs a name")
    return name[:255]


def _metadata(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ApiError(400, "invalid_metadata", "metadata must be a JSON object") from error
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) for v in value.values()
    ):
        raise ApiError(400, "invalid_metadata", "metadata must be a flat JSON object")
    return {str(key)[:100]: str(item)[:1000] for key, item in value.items()}


def _set_metadata(document_id: str, metadata: dict[str, str]) -> None:
    if metadata:
        get_database().run(
            "UPDATE documents SET metadata = metadata || CAST(:m AS jsonb)"
            " WHERE id = CAST(:d AS uuid)",
            m=json.dumps(metadata),
            d=document_id,
        )


def post_document(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """Accept a small file as multipart field ``file``; 202 with the version it became."""
    settings = get_settings()
    kb = require_kb(kb_id, principal, "write")
    limit = settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise ApiError(
            413,
            "payload_too_large",
            f"uploads are limited to {limit:,} bytes here; request a signed URL from"
            " /v1/knowledge-bases/{kb_id}/uploads for larger files",
        )
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file", "send the document as multipart/form-data field 'file'")
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "payload_too_large", f"uploads are limited to {limit:,} bytes")
    filename = clean_filename(upload.filename)
    database = get_database()
    document_id = ensure_document(database, kb.id, filename, filename, principal.id)
    _set_metadata(document_id, _metadata(request.form.get("metadata")))
    info = storage.upload_bytes(
        settings.upload_bucket,
        upload_object_name(document_id, storage.md5_checksum(data)[4:20], filename),
        data,
        content_type=upload.mimetype or "application/octet-stream",
        metadata={"document-id": document_id, "uploaded-by": principal.id},
    )
    registered = register_object(database, document_id, info, declared_type=upload.mimetype)
    if registered is None:
        raise ApiError(409, "document_deleted", "the document was deleted during the upload")
    return json_response(
        {
            "document_id": registered.document_id,
            "version_id": registered.version_id,
            "status": registered.status,
            "duplicate": not registered.created,
        },
        202,
    )


_signer_lock = threading.Lock()
_signer: Any = None


def _signing_credentials() -> Any:
    """Local stack: a service-account key file signs; in GCP, IAM signBlob does (None)."""
    global _signer
    path = get_settings().signing_key_file
    if not path:
        return None
    with _signer_lock:
        if _signer is None:
            from google.oauth2 import service_account

            _signer = service_account.Credentials.from_service_account_file(path)
        return _signer


def post_upload(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """A V4 signed URL to PUT a large file to; its finalize event starts the pipeline."""
    settings = get_settings()
    kb = require_kb(kb_id, principal, "write")
    body = SignedUploadRequest.model_validate(read_json(request))
    max_bytes = get_parse_limits().max_bytes
    if body.size > max_bytes:
        raise ApiError(413, "payload_too_large", f"documents are limited to {max_bytes:,} bytes")
    filename = clean_filename(body.filename)
    database = get_database()
    document_id = ensure_document(database, kb.id, filename, filename, principal.id)
    _set_metadata(document_id, body.metadata)
    object_name = upload_object_name(document_id, uuid.uuid4().hex[:16], filename)
    url = storage.signed_upload_url(
        settings.upload_bucket,
        object_name,
        content_type=body.content_type,
        ttl_s=settings.signed_url_ttl_s,
        signing_credentials=_signing_credentials(),
    )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.signed_url_ttl_s)
    return json_response(
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


ROUTES = [
    Route("POST", "/v1/knowledge-bases/<kb_id>/documents", post_document),
    # The load balancer sends this whole path to the upload function, listing included.
    Route("GET", "/v1/knowledge-bases/<kb_id>/documents", get_documents),
    Route("POST", "/v1/knowledge-bases/<kb_id>/uploads", post_upload),
]
