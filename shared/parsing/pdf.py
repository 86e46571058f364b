"""PDF parsing, the entry point: read the pages, infer paragraphs and headings, add blocks.

One job per module, in the order a parse runs them, all under the PDFium lock here:

- :mod:`shared.parsing.pdf_reading`: PDFium: the document, each page's lines with their
  position, font size, boldness and boxes, and the metadata title and date.
- :mod:`shared.parsing.pdf_layout`: the lines grouped into paragraphs by their spacing,
  and the running headers/footers, table rows and spread-out column labels headings
  must not be taken for.
- :mod:`shared.parsing.headings`: which paragraphs are headings, at which level, for
  the whole document at once; filing wording by :data:`~shared.parsing.headings.SEC_FILING_RULES`.
- :mod:`shared.parsing.pdf_model`: the lines, paragraphs and pages they pass along,
  and where the lines' boxes land in the document's text.
- :mod:`shared.parsing.dates`: the metadata date as ISO 8601.

A page with no text layer worth the name (fewer than a few letters) that draws an image
is a scan: it is rendered and read by OCR (:mod:`shared.parsing.ocr_layout`), outside
the lock, and its paragraphs take the text layer's place. OCR loads only when a page
needs it.

This module opens the document, enforces the page, OCR and text limits, and hands the
paragraphs to the builder with their page numbers, sizes and boxes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pypdfium2 as pdfium

from shared.config import ParseLimits
from shared.errors import CorruptContentError, EmptyContentError, LimitExceededError
from shared.parsing.builder import BLOCK_SEPARATOR, DocumentBuilder
from shared.parsing.dates import parse_pdf_date
from shared.parsing.headings import SEC_FILING_RULES, HeadingRules, mark_headings
from shared.parsing.page_blocks import add_pages
from shared.parsing.pdf_layout import _paragraphs
from shared.parsing.pdf_model import _Page
from shared.parsing.pdf_reading import (
    _has_images,
    _metadata_date,
    _metadata_title,
    _open,
    _read_page,
    _render_page,
)

# parse_pdf_date lived here before dates.py; importers of this module keep finding it.
__all__ = ["parse_pdf", "parse_pdf_date"]

# A page whose text layer has fewer word characters than this is read by OCR, if it
# draws an image: a stamped page number or a scanner's lone label is not a text layer.
_NEGLIGIBLE_TEXT = 16


# PDFium is not thread-safe, not even across different documents (pypdfium2's docs), and
# an instance may parse several PDFs at once on worker threads: every PDFium call of a
# parse happens under this lock. Pages and text pages are closed explicitly inside it,
# so no PDFium work is left for the garbage collector to run outside it.
_PDFIUM_LOCK = threading.Lock()


@dataclass
class _Reading:
    """What reading a PDF's pages found, before headings and blocks."""

    page_count: int
    pages: list[_Page]
    unreadable: list[int] = field(default_factory=list)  # page numbers, from 1
    scans: list[int] = field(default_factory=list)  # page indexes to OCR, from 0
    title: str | None = None
    created: str | None = None


def parse_pdf(
    data: bytes,
    builder: DocumentBuilder,
    limits: ParseLimits,
    *,
    heading_rules: HeadingRules = SEC_FILING_RULES,
) -> str | None:
    """Parse a PDF page by page into ``builder``; return its title, if any.

    PDFium calls are serialised process-wide because PDFium is not thread-safe (see
    ``_PDFIUM_LOCK``); OCR of scanned pages runs outside that lock.

    Args:
        data: The PDF bytes.
        builder: Receives the blocks and page spans.
        limits: The parse limits (``max_pages``, ``max_text_chars``, the OCR limits).
        heading_rules: The wording of the document family's structural headings. SEC
            filings are the default: their wording rarely occurs elsewhere, and other
            documents still get the headings their fonts show.

    Returns:
        The document's metadata title, if set.

    Raises:
        EncryptedContentError: For password-protected PDFs.
        CorruptContentError: For unreadable PDFs.
        LimitExceededError: For too many pages, too many scanned pages, OCR over its
            time budget, or too much text.
        EmptyContentError: When no page has text, not even by OCR.
    """
    with _PDFIUM_LOCK:
        pdf = _open(data)
    try:
        with _PDFIUM_LOCK:
            reading = _read_document(pdf, limits)
        if reading.scans:
            _ocr_scans(pdf, reading, builder, limits)
    finally:
        with _PDFIUM_LOCK:
            pdf.close()
    if reading.created is not None:
        # When the file says it was made: answers about "the latest" use it.
        builder.metadata["created"] = reading.created
    mark_headings(reading.pages, heading_rules)
    add_pages(builder, reading.pages)
    if len(reading.unreadable) == reading.page_count:
        raise CorruptContentError(
            "PDF pages could not be read; the file is damaged", code="corrupt_pdf"
        )
    if builder.block_count == 0:
        raise EmptyContentError(
            f"PDF has {reading.page_count:,} page(s) but no extractable text: "
            + (
                "OCR found none in its scanned pages"
                if reading.scans
                else "no text layer, and no scanned image to read by OCR"
            ),
            code="pdf_no_text",
        )
    if reading.unreadable:
        builder.metadata["unreadable_pages"] = ",".join(map(str, reading.unreadable))
    return reading.title


def _read_document(pdf: pdfium.PdfDocument, limits: ParseLimits) -> _Reading:
    """Every page's text layer, the scans among the pages, and the metadata.

    Runs with the PDFium lock held.
    """
    page_count = len(pdf)
    if page_count > limits.max_pages:
        raise LimitExceededError(
            f"PDF has {page_count:,} pages; at most {limits.max_pages:,} are allowed. "
            "Split it into smaller documents and upload them separately",
            code="too_many_pages",
        )
    reading = _Reading(page_count=page_count, pages=[])
    _read_pages(pdf, limits, reading)
    reading.title = _metadata_title(pdf)
    reading.created = _metadata_date(pdf)
    if len(reading.scans) > limits.max_ocr_pages:
        raise LimitExceededError(
            f"PDF has {len(reading.scans):,} scanned pages (no text layer); at most "
            f"{limits.max_ocr_pages:,} are read by OCR in one document. Split it into "
            "smaller documents, or upload a PDF with a text layer",
            code="too_many_ocr_pages",
        )
    return reading


def _read_pages(pdf: pdfium.PdfDocument, limits: ParseLimits, reading: _Reading) -> None:
    """Read every page's paragraphs into ``reading``, stopping once the text is over the limit.

    Records the pages that could not be read and the scans (pages for OCR).
    """
    chars = -len(BLOCK_SEPARATOR)
    for index in range(len(pdf)):
        try:
            width, height, lines = _read_page(pdf, index)
            page = _Page(width=width, height=height, paragraphs=_paragraphs(lines))
            letters = sum(ch.isalnum() for line in lines for ch in line.text)
            if letters < _NEGLIGIBLE_TEXT and _has_images(pdf, index):
                reading.scans.append(index)
        except pdfium.PdfiumError:
            # One broken page should not sink a 300-page report; it is recorded.
            reading.unreadable.append(index + 1)
            page = _Page()
        reading.pages.append(page)
        # Headings need the whole document, so blocks are added at the end; stop
        # reading once the text is too long anyway. Paragraph texts are already
        # clean, so this is the builder's count and it raises below.
        chars += sum(len(p.text) + len(BLOCK_SEPARATOR) for p in page.paragraphs)
        if chars > limits.max_text_chars:
            break


def _ocr_scans(
    pdf: pdfium.PdfDocument, reading: _Reading, builder: DocumentBuilder, limits: ParseLimits
) -> None:
    """Replace each scanned page's text layer by what OCR reads on it.

    Each page is rendered under the PDFium lock and read outside it, so other parses
    of the instance are not held up by OCR.

    Raises:
        LimitExceededError: When OCR has taken ``max_ocr_seconds`` and pages remain.
    """
    from shared.parsing.ocr_layout import ocr_page

    started = time.monotonic()
    confidences: list[float] = []
    for done, index in enumerate(reading.scans):
        if done and time.monotonic() - started > limits.max_ocr_seconds:
            raise LimitExceededError(
                f"OCR of this PDF's scanned pages took over {limits.max_ocr_seconds:,.0f} s "
                f"with {len(reading.scans) - done:,} of {len(reading.scans):,} pages left; "
                "split it into smaller documents",
                code="ocr_too_slow",
            )
        with _PDFIUM_LOCK:
            image = _render_page(pdf, index, limits.ocr_dpi, limits.ocr_max_page_pixels)
        scanned = reading.pages[index]
        page, found = ocr_page(image, width=scanned.width, height=scanned.height)
        reading.pages[index] = page
        confidences.extend(found)
    builder.metadata["ocr_pages"] = ",".join(str(index + 1) for index in reading.scans)
    if confidences:
        builder.metadata["ocr_confidence"] = f"{sum(confidences) / len(confidences):.3f}"
