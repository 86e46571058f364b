"""File names of any length and script are stored safely and shown as sent (bounded)."""

from __future__ import annotations

import io
import unicodedata

import requests

from scripts.localstack.stack import LocalStack
from shared.filenames import MAX_DISPLAY_CHARS, OBJECT_PART_BYTES
from tests.support.api import Api, body_of

CONTENT = b"# Notes\n\nThe backup runs every night at two."


def test_a_400_character_non_ascii_name_uploads_and_is_shown(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("names")
    name = unicodedata.normalize("NFD", "é" * 400) + ".md"
    response = api.post(
        f"/v1/knowledge-bases/{kb['id']}/documents", data={"file": (io.BytesIO(CONTENT), name)}
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    clean_stack.wait_idle()

    document = api.document(body_of(response)["document_id"])
    assert document["status"] == "ready", document
    assert document["filename"] == "é" * (MAX_DISPLAY_CHARS - 3) + ".md"
    objects = [blob.name for blob in clean_stack.objects.client.list_blobs("ragline-uploads")]
    assert len(objects) == 1
    assert len(objects[0].rsplit("/", 1)[-1].encode()) <= OBJECT_PART_BYTES


def test_a_long_name_gets_a_signed_upload_url_that_works(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("names")
    name = "😀" * 300 + ".md"
    granted = api.post(
        f"/v1/knowledge-bases/{kb['id']}/uploads",
        json={"filename": name, "content_type": "text/markdown", "size": len(CONTENT)},
    )
    assert granted.status_code == 201, granted.get_data(as_text=True)
    grant = body_of(granted)
    put = requests.put(grant["upload_url"], data=CONTENT, headers=grant["headers"], timeout=60)
    assert put.status_code == 200, put.text
    clean_stack.wait_idle()
    if clean_stack.notifier is not None:
        clean_stack.notifier.poll_once()
    clean_stack.wait_idle()

    document = api.document(grant["document_id"])
    assert document["status"] == "ready", document
    assert document["filename"].endswith("😀.md")
