"""OCR end to end on the local stack: a scanned page is cited, and the viewer finds it.

A two-page PDF (the 10-Q's cover with its text layer, then a page of the same filing as
a scan with no text layer) goes through upload, parse (OCR on page 2 only), chunk,
embed and index; a question that only the scanned page answers cites it, and the
citation viewer returns boxes on page 2, inside the page. An image upload gets
``kind: image`` pages in pixels.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of
from tests.support.ocr_pages import FILING, encode, image_pdf, scan_page

QUESTION = "When is the trial scheduled in the Dusseldorf Regional Court?"


def _cover_then_scan(corpus: Path, scan: bytes) -> bytes:
    """The filing's cover page (with its text layer) followed by the scanned page."""
    document = pdfium.PdfDocument.new()
    cover = pdfium.PdfDocument(corpus / FILING)
    scanned = pdfium.PdfDocument(scan)
    document.import_pages(cover, [0])
    document.import_pages(scanned, [0])
    buffer = io.BytesIO()
    document.save(buffer)
    for pdf in (document, cover, scanned):
        pdf.close()
    return buffer.getvalue()


def _ask(api: Api, kb_id: str, question: str) -> dict[str, Any]:
    response = api.post("/v1/ask", json={"knowledge_base_ids": [kb_id], "question": question})
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.json or {})


def _viewer(api: Api, chunk_id: int) -> dict[str, Any]:
    response = api.get(f"/v1/citations/{chunk_id}/viewer")
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(body_of(response))


def test_a_question_about_a_scanned_page_cites_it_with_boxes_on_that_page(
    clean_stack: LocalStack, corpus: Path
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("scans")
    page = scan_page(corpus)
    document = api.ingest(
        kb["id"], "intel-scan.pdf", _cover_then_scan(corpus, image_pdf(page.image))
    )
    assert document["status"] == "ready", document

    body = _ask(api, kb["id"], QUESTION)
    assert body["citations"], body
    cited = body["citations"][0]
    assert cited["document_id"] == document["id"]
    assert cited["page_start"] <= 2 <= cited["page_end"], cited
    view = _viewer(api, cited["chunk_id"])
    assert view["kind"] == "pdf" and "Trial is scheduled for December 2023" in view["text"]
    [scanned] = [p for p in view["pages"] if p["number"] == 2]
    assert abs(scanned["width"] - page.width) < 1 and abs(scanned["height"] - page.height) < 1
    assert scanned["boxes"], view
    for x0, y0, x1, y1 in scanned["boxes"]:
        assert 0 <= x0 < x1 <= scanned["width"] and 0 <= y0 < y1 <= scanned["height"]
    # The line that answers sits where the filing printed it.
    left, top = page.lines["Trial is"]
    assert any(abs(x0 - left) < 4 and abs(y0 - top) < 6 for x0, y0, _, _ in scanned["boxes"])


def test_an_image_upload_is_viewed_as_an_image_page_in_pixels(
    clean_stack: LocalStack, corpus: Path
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("images")
    page = scan_page(corpus)
    scale = page.image.height / page.height
    top, bottom = page.lines["Trial is"][1] - 2, page.lines["Regional Court"][1] + 8.3
    strip = page.image.crop((0, int(top * scale), page.image.width, int(bottom * scale)))
    document = api.ingest(kb["id"], "trial.webp", encode(strip, "WEBP", quality=90))
    assert document["status"] == "ready", document

    body = _ask(api, kb["id"], QUESTION)
    view = _viewer(api, body["citations"][0]["chunk_id"])
    assert view["kind"] == "image" and view["content_type"] == "image/webp"
    [only] = view["pages"]
    assert (only["number"], only["width"], only["height"]) == (1, *map(float, strip.size))
    assert len(only["boxes"]) == 2, "a box per printed line"
