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

This module opens the document, enforces the page and text limits, and hands the
paragraphs to the builder with their page numbers, sizes and boxes.
"""

from __future__ import annotations

import threading

import pypdfium2 as pdfium

from shared.config import ParseLimits
from shared.errors import CorruptContentError, EmptyContentError, LimitExceededError
from shared.parsing.builder import BLOCK_SEPARATOR, DocumentBuilder
from shared.parsing.dates import parse_pdf_date
from shared.parsing.headings import SEC_FILING_RULES, HeadingRules, mark_headings
from shared.parsing.pdf_layout import _paragraphs
from shared.parsing.pdf_model import _Page, _place_boxes
from shared.parsing.pdf_reading import _metadata_date, _metadata_title, _open, _read_page

# parse_pdf_date lived here before dates.py; importers of this module keep finding it.
__all__ = ["parse_pdf", "parse_pdf_date"]


# PDFium is not thread-safe, not even across different documents (pypdfium2's docs), and
# an instance may parse several PDFs at once on worker threads: every PDFium call of a
# parse happens under this lock. Pages and text pages are closed explicitly inside it,
# so no PDFium work is left for the garbage collector to run outside it.
_PDFIUM_LOCK = threading.Lock()


def parse_pdf(
    data: bytes,
    builder: DocumentBuilder,
    limits: ParseLimits,
    *,
    heading_rules: HeadingRules = SEC_FILING_RULES,
) -> str | None:
    """Parse a PDF page by page into ``builder``; return its title, if any.

    Serialised process-wide because PDFium is not thread-safe (see ``_PDFIUM_LOCK``).

    Args:
        data: The PDF bytes.
        builder: Receives the blocks and page spans.
        limits: The parse limits (``max_pages``, ``max_text_chars``).
        heading_rules: The wording of the document family's structural headings. SEC
            filings are the default: their wording rarely occurs elsewhere, and other
            documents still get the headings their fonts show.

    Returns:
        The document's metadata title, if set.

    Raises:
        EncryptedContentError: For password-protected PDFs.
        CorruptContentError: For unreadable PDFs.
        LimitExceededError: For too many pages or too much text.
        EmptyContentError: When no page has extractable text (e.g. a scan).
    """
    with _PDFIUM_LOCK:
        return _parse_pdf_unlocked(data, builder, limits, heading_rules)


def _parse_pdf_unlocked(
    data: bytes,
    builder: DocumentBuilder,
    limits: ParseLimits,
    heading_rules: HeadingRules,
) -> str | None:
    """Extract heading and paragraph blocks page by page, keeping page numbers.

    :func:`parse_pdf` with the PDFium lock held; arguments, result and errors as there.
    """
    pdf = _open(data)
    try:
        page_count = len(pdf)
        if page_count > limits.max_pages:
            raise LimitExceededError(
                f"PDF has {page_count:,} pages; at most {limits.max_pages:,} are allowed. "
                "Split it into smaller documents and upload them separately",
                code="too_many_pages",
            )
        pages, unreadable = _read_pages(pdf, limits)
        title = _metadata_title(pdf)
        created = _metadata_date(pdf)
        if created is not None:
            # When the file says it was made: answers about "the latest" use it.
            builder.metadata["created"] = created
    finally:
        pdf.close()
    mark_headings(pages, heading_rules)
    _add_pages(builder, pages)
    if len(unreadable) == page_count:
        raise CorruptContentError(
            "PDF pages could not be read; the file is damaged", code="corrupt_pdf"
        )
    if builder.block_count == 0:
        raise EmptyContentError(
            f"PDF has {page_count:,} page(s) but no extractable text; it is probably "
            "scanned images, and OCR is not supported. Upload a PDF with a text layer",
            code="pdf_no_text",
        )
    if unreadable:
        builder.metadata["unreadable_pages"] = ",".join(map(str, unreadable))
    return title


def _read_pages(pdf: pdfium.PdfDocument, limits: ParseLimits) -> tuple[list[_Page], list[int]]:
    """Read every page's paragraphs, stopping once the text is over the limit.

    Returns:
        The pages read, and the numbers (from 1) of those that could not be read.
    """
    unreadable: list[int] = []
    pages: list[_Page] = []
    chars = -len(BLOCK_SEPARATOR)
    for index in range(len(pdf)):
        try:
            width, height, lines = _read_page(pdf, index)
            page = _Page(width=width, height=height, paragraphs=_paragraphs(lines))
        except pdfium.PdfiumError:
            # One broken page should not sink a 300-page report; it is recorded.
            unreadable.append(index + 1)
            page = _Page()
        pages.append(page)
        # Headings need the whole document, so blocks are added at the end; stop
        # reading once the text is too long anyway. Paragraph texts are already
        # clean, so this is the builder's count and it raises below.
        chars += sum(len(p.text) + len(BLOCK_SEPARATOR) for p in page.paragraphs)
        if chars > limits.max_text_chars:
            break
    return pages, unreadable


def _add_pages(builder: DocumentBuilder, pages: list[_Page]) -> None:
    """Add each page's headings and paragraphs to ``builder``, with their line boxes."""
    for number, page in enumerate(pages, start=1):
        sized = page.width > 0 and page.height > 0
        builder.begin_page(
            number,
            width=round(page.width, 1) if sized else None,
            height=round(page.height, 1) if sized else None,
        )
        for paragraph in page.paragraphs:
            if paragraph.level is None:
                text = paragraph.text
                block = builder.add("paragraph", text)
            else:
                # The builder puts a heading on one line; so does this copy of its text.
                text = " ".join(paragraph.text.split())
                block = builder.add("heading", paragraph.text, level=paragraph.level)
            if block is not None and block.end - block.start == len(text):
                builder.boxes.extend(_place_boxes(paragraph.lines, text, block.start, number))
        builder.end_page()
