"""Large files: a V4 signed URL from the API, a PUT to the bucket, then the pipeline."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from scripts.localstack.stack import LocalStack
from shared.config import get_parse_limits
from tests.support.api import Api, visible_chunks

MANUAL = (
    "# Operating manual\n\n"
    "Read this manual before operating the machine.\n\n"
    "## Safety\n\n" + "Always wear protective equipment near moving parts. " * 80 + "\n\n"
    "## Maintenance\n\n" + "Oil the bearings every week and log the date of each service. " * 80
)


def request_upload(api: Api, kb: str, **fields: Any) -> Any:
    return api.post(f"/v1/knowledge-bases/{kb}/uploads", json=fields)


def error_code(response: Any) -> str:
    body = json.loads(response.get_data(as_text=True))
    assert set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


def test_signed_url_upload_becomes_a_ready_document(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("manuals")
    data = MANUAL.encode()

    response = request_upload(
        api,
        kb["name"],
        filename="manual.md",
        content_type="text/markdown",
        size=len(data),
        metadata={"team": "plant"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    grant = json.loads(response.get_data(as_text=True))
    assert grant["method"] == "PUT"
    assert grant["headers"] == {"Content-Type": "text/markdown"}
    assert grant["status"] == "awaiting_upload"
    prefix = f"gs://{clean_stack.settings.upload_bucket}/_uploads/{grant['document_id']}/"
    assert grant["object"].startswith(prefix)
    assert grant["object"].endswith("/manual.md")
    query = parse_qs(urlsplit(grant["upload_url"]).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Signature"][0]
    assert grant["upload_url"].startswith(os.environ["STORAGE_EMULATOR_HOST"])

    waiting = api.document(grant["document_id"])
    assert waiting["status"] == "awaiting_upload"
    assert waiting["versions"] == []
    assert waiting["metadata"] == {"team": "plant"}

    put = requests.put(grant["upload_url"], data=data, headers=grant["headers"], timeout=30)
    assert put.status_code < 300, put.text
    stored = clean_stack.objects.stat(
        clean_stack.settings.upload_bucket, grant["object"].split("/", 3)[3]
    )
    assert stored is not None and stored.size == len(data)
    clean_stack.notifier.poll_once()  # type: ignore[union-attr]
    clean_stack.wait_idle()

    document = api.document(grant["document_id"])
    assert document["status"] == "ready", document
    assert document["filename"] == "manual.md"
    assert len(document["versions"]) == 1
    assert document["versions"][0]["size_bytes"] == len(data)
    assert document["chunk_count"] == len(visible_chunks(clean_stack, document["id"])) > 1
    texts = " ".join(chunk[1] for chunk in visible_chunks(clean_stack, document["id"]))
    assert "protective equipment" in texts and "bearings" in texts
    assert document["metadata"] == {"team": "plant"}


def test_signed_url_for_a_file_over_the_parse_limit_is_413(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("big")
    limit = get_parse_limits().max_bytes
    response = request_upload(
        api, kb["id"], filename="huge.pdf", content_type="application/pdf", size=limit + 1
    )
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"
    at_limit = request_upload(
        api, kb["id"], filename="fits.pdf", content_type="application/pdf", size=limit
    )
    assert at_limit.status_code == 201
    listed = json.loads(api.get(f"/v1/knowledge-bases/{kb['id']}/documents").get_data())
    assert [document["filename"] for document in listed["documents"]] == ["fits.pdf"]


@pytest.mark.parametrize(
    "content_type", ["pdf", "", "text", "/plain", "text/", "text plain/x"], ids=repr
)
def test_signed_url_with_a_bad_content_type_is_400(
    clean_stack: LocalStack, content_type: str
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("types")
    response = request_upload(api, kb["id"], filename="a.txt", content_type=content_type, size=10)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_code(response) == "invalid_request"


@pytest.mark.parametrize(
    "fields",
    [
        {"content_type": "text/plain", "size": 10},
        {"filename": "a.txt", "size": 10},
        {"filename": "a.txt", "content_type": "text/plain"},
        {"filename": "a.txt", "content_type": "text/plain", "size": 0},
        {"filename": "a.txt", "content_type": "text/plain", "size": "ten"},
        {"filename": "", "content_type": "text/plain", "size": 10},
        {"filename": "a.txt", "content_type": "text/plain", "size": 10, "extra": 1},
    ],
    ids=[
        "no-filename",
        "no-content-type",
        "no-size",
        "zero-size",
        "size-not-a-number",
        "empty-filename",
        "unknown-field",
    ],
)
def test_signed_url_with_missing_or_bad_fields_is_400(
    clean_stack: LocalStack, fields: dict[str, Any]
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("fields")
    response = request_upload(api, kb["id"], **fields)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_code(response) == "invalid_request"
    listed = json.loads(api.get(f"/v1/knowledge-bases/{kb['id']}/documents").get_data())
    assert listed["documents"] == []
