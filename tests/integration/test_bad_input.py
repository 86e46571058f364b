"""Bad input fails its own version with a clear, specific message and harms nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scripts.localstack.stack import LocalStack
from shared.config import get_parse_limits
from tests.support.api import Api
from tests.support.ocr_pages import png_claiming
from tests.unit import parsing_fixtures as fx

BAD_INPUTS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # name: (bytes, expected error code, words the message must contain)
    "encrypted.pdf": (fx.encrypted_pdf, "pdf_encrypted", "password"),
    "corrupt.pdf": (lambda: fx.sample_pdf()[:200], "corrupt_pdf", "PDF"),
    "scanned.pdf": (fx.scanned_pdf, "pdf_no_text", "no extractable text"),
    "empty.txt": (lambda: b"", "empty_document", "empty"),
    "blank.md": (lambda: b" \n\n\t \n", "empty_document", "empty"),
    "bomb.docx": (fx.zip_bomb_docx, "zip_bomb", "zip bomb"),
    "corrupt.docx": (fx.docx_bad_xml, "corrupt_docx", "DOCX"),
    "random.bin": (fx.random_binary, "binary_content", "binary"),
    "archive.zip": (lambda: fx.plain_zip({"a.txt": b"hello"}), "unsupported_type", "ZIP"),
    "bomb.png": (lambda: png_claiming(100_000, 100_000), "image_too_large", "pixels"),
    "truncated.png": (lambda: png_claiming(64, 64), "corrupt_image", "damaged"),
}


@pytest.mark.parametrize("filename", list(BAD_INPUTS))
def test_bad_input_fails_only_its_version(clean_stack: LocalStack, filename: str) -> None:
    make, code, words = BAD_INPUTS[filename]
    api = Api(clean_stack)
    kb = api.create_kb("mixed")
    good = api.upload(kb["id"], "good.md", b"# Good\n\nA perfectly fine document.")
    bad = api.upload(kb["id"], filename, make())
    clean_stack.wait_idle()

    document = api.document(bad["document_id"])
    assert document["status"] == "failed"
    error = document["versions"][0]["error"]
    assert error["code"] == code, error
    assert words.lower() in error["message"].lower(), error
    assert document["versions"][0]["stages"]["failed"] is not None
    assert (
        clean_stack.database.scalar(
            "SELECT count(*) FROM chunks WHERE document_id = CAST(:d AS uuid)", d=document["id"]
        )
        == 0
    )
    assert api.document(good["document_id"])["status"] == "ready"


def test_oversized_document_fails_before_download(
    clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("limits")
    monkeypatch.setattr(get_parse_limits(), "max_bytes", 1000)
    accepted = api.upload(kb["id"], "big.md", b"# Big\n\n" + b"word " * 400)
    clean_stack.wait_idle()

    error = api.document(accepted["document_id"])["versions"][0]["error"]
    assert error["code"] == "limit_exceeded"
    assert "2,007 bytes" in error["message"] and "1,000" in error["message"]


def test_too_many_pages_fails_with_the_page_count(
    clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("pages")
    monkeypatch.setattr(get_parse_limits(), "max_pages", 3)
    accepted = api.upload(kb["id"], "long.pdf", fx.many_pages_pdf(5))
    clean_stack.wait_idle()

    error = api.document(accepted["document_id"])["versions"][0]["error"]
    assert error["code"] == "too_many_pages"
    assert "5" in error["message"] and "3" in error["message"]


def test_a_failed_version_can_be_replaced_by_a_good_one(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("retry")
    failed = api.upload(kb["id"], "notes.md", b"")
    clean_stack.wait_idle()
    fixed = api.ingest(kb["id"], "notes.md", b"# Notes\n\nNow with content.")

    assert fixed["id"] == failed["document_id"]
    assert [version["status"] for version in fixed["versions"]] == ["ready", "failed"]
    assert fixed["status"] == "ready"
