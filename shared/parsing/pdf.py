"""PDF text extraction with pypdfium2, page by page.

PDFs have no paragraphs, only positioned lines. Paragraph breaks are inferred from the
vertical gap between consecutive lines relative to the page's usual line spacing; the
line structure inside a paragraph is kept because it is what keeps tables readable.
"""

from __future__ import annotations

import itertools
import re
import statistics
import threading
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from shared.config import ParseLimits
from shared.errors import (
    CorruptContentError,
    EmptyContentError,
    EncryptedContentError,
    LimitExceededError,
)
from shared.parsing.builder import DocumentBuilder, clean_text

# A gap this many times the page's usual line spacing separates paragraphs.
_PARAGRAPH_GAP = 1.3
# Without enough lines to know the usual spacing, compare with the font size instead:
# body lines sit ~1.2 font sizes apart, paragraphs ~1.7 or more.
_MIN_LEADS = 5
_GAP_IN_FONT_SIZES = 1.6
# Whatever the usual spacing, a gap this many font sizes wide is a paragraph break.
_MAX_GAP_IN_FONT_SIZES = 2.3
# Text jumping up by more than this many line spacings starts a new column or frame.
_COLUMN_JUMP = 4.0
# Paragraphs this short are fragments and join the previous paragraph.
_FRAGMENT_CHARS = 4
# Soft hyphens at a line end (pdfium reports them as U+0002 or U+00AD) join the word.
_SOFT_HYPHEN_END = re.compile("[\x02\u00ad]$")
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
     "\ufb05": "st", "\ufb06": "st"}
)  # fmt: skip


@dataclass
class _Line:
    text: str
    bottom: float | None = None  # baseline-ish y in PDF points (y grows upwards)
    height: float | None = None


# PDFium is not thread-safe, not even across different documents (pypdfium2's docs), and
# an instance may parse several PDFs at once on worker threads: every PDFium call of a
# parse happens under this lock. Pages and text pages are closed explicitly inside it,
# so no PDFium work is left for the garbage collector to run outside it.
_PDFIUM_LOCK = threading.Lock()


def parse_pdf(data: bytes, builder: DocumentBuilder, limits: ParseLimits) -> str | None:
    """Parse a PDF page by page into ``builder``; return its title, if any.

    Serialised process-wide because PDFium is not thread-safe (see ``_PDFIUM_LOCK``).
    """
    with _PDFIUM_LOCK:
        return _parse_pdf_unlocked(data, builder, limits)


def _parse_pdf_unlocked(data: bytes, builder: DocumentBuilder, limits: ParseLimits) -> str | None:
    """Extract paragraph blocks page by page, keeping page numbers.

    Args:
        data: The PDF bytes.
        builder: Receives the blocks and page spans.
        limits: The parse limits (``max_pages``).

    Returns:
        The document's metadata title, if set.

    Raises:
        EncryptedContentError: For password-protected PDFs.
        CorruptContentError: For unreadable PDFs.
        LimitExceededError: For too many pages.
        EmptyContentError: When no page has extractable text (e.g. a scan).
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
        unreadable: list[int] = []
        for index in range(page_count):
            builder.begin_page(index + 1)
            try:
                lines = _page_lines(pdf, index)
            except pdfium.PdfiumError:
                # One broken page should not sink a 300-page report; it is recorded.
                unreadable.append(index + 1)
                lines = []
            for paragraph in _paragraphs(lines):
                builder.add("paragraph", paragraph)
            builder.end_page()
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
        title = _metadata_title(pdf)
    finally:
        pdf.close()
    if unreadable:
        builder.metadata["unreadable_pages"] = ",".join(map(str, unreadable))
    return title


def _open(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedContentError(
                "PDF is password-protected; remove the password and upload again",
                code="pdf_encrypted",
            ) from exc
        if exc.err_code == pdfium_c.FPDF_ERR_SECURITY:
            raise EncryptedContentError(
                "PDF uses an unsupported encryption scheme; save an unencrypted copy and "
                "upload again",
                code="pdf_encrypted",
            ) from exc
        raise CorruptContentError(
            "PDF is damaged or incomplete and cannot be opened; upload the original file again",
            code="corrupt_pdf",
        ) from exc


def _page_lines(pdf: pdfium.PdfDocument, index: int) -> list[_Line]:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return _lines(textpage)
        finally:
            textpage.close()
    finally:
        page.close()


def _lines(textpage: pdfium.PdfTextPage) -> list[_Line]:
    raw = textpage.get_text_range()
    # Char boxes are looked up by index, which is only valid when the text maps 1:1 to
    # pdfium's char list (nearly always); otherwise fall back to text-only splitting.
    positioned = len(raw) == textpage.count_chars()
    lines: list[_Line] = []
    offset = 0
    for piece in re.split(r"(\r\n|\n|\r)", raw):
        start, offset = offset, offset + len(piece)
        if piece in ("\r\n", "\n", "\r"):
            continue
        text = piece.translate(_LIGATURES)
        if not text.strip():
            lines.append(_Line(""))  # an explicit blank line: a paragraph break
            continue
        line = _Line(text)
        if positioned:
            first = start + len(piece) - len(piece.lstrip())
            # The loose box spans the font's ascent to descent: about the font size.
            _, bottom, _, top = textpage.get_charbox(first, loose=True)
            line.bottom, line.height = bottom, top - bottom
        lines.append(line)
    return lines


def _paragraphs(lines: list[_Line]) -> list[str]:
    """Group lines into paragraphs by blank lines and vertical gaps."""
    leads = [
        prev.bottom - cur.bottom
        for prev, cur in itertools.pairwise(lines)
        if prev.bottom is not None and cur.bottom is not None and prev.bottom > cur.bottom
    ]
    # The median downward lead is the page's normal line spacing.
    spacing = statistics.median(leads) if len(leads) >= _MIN_LEADS else None
    paragraphs: list[list[str]] = []
    current: list[str] = []
    previous: _Line | None = None
    for line in lines:
        if not line.text.strip():
            _close(paragraphs, current)
            previous = None
            continue
        if previous is not None and _is_break(previous, line, spacing):
            _close(paragraphs, current)
        if current and _SOFT_HYPHEN_END.search(current[-1].rstrip()):
            current[-1] = current[-1].rstrip()[:-1] + line.text.strip()
        else:
            current.append(line.text)
        previous = line
    _close(paragraphs, current)
    merged: list[str] = []
    for paragraph in map(_tidy, paragraphs):
        # Stray fragments ("(1)" footnote markers, a lone page number) that pdfium emits
        # apart from their line are not paragraphs of their own.
        if merged and len(paragraph) <= _FRAGMENT_CHARS:
            merged[-1] = f"{merged[-1]}\n{paragraph}"
        elif paragraph:
            merged.append(paragraph)
    return merged


def _is_break(previous: _Line, line: _Line, spacing: float | None) -> bool:
    if previous.bottom is None or line.bottom is None:
        return False
    lead = previous.bottom - line.bottom
    size = max(previous.height or 0.0, line.height or 0.0)
    if size <= 0:
        return False
    if spacing is None:
        gap = size * _GAP_IN_FONT_SIZES
    else:
        gap = min(spacing * _PARAGRAPH_GAP, size * _MAX_GAP_IN_FONT_SIZES)
    # Either a larger-than-usual gap downwards, or a big jump upwards (next column).
    # Small upward moves are multi-line table headers and superscripts: keep together.
    return lead > gap or lead < -(spacing or size) * _COLUMN_JUMP


def _close(paragraphs: list[list[str]], current: list[str]) -> None:
    if current:
        paragraphs.append(list(current))
        current.clear()


def _tidy(lines: list[str]) -> str:
    text = clean_text("\n".join(lines)).replace("\u00ad", "")
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


def _metadata_title(pdf: pdfium.PdfDocument) -> str | None:
    try:
        title = pdf.get_metadata_value("Title")
    except (pdfium.PdfiumError, UnicodeDecodeError, ValueError):
        return None
    title = title.strip()
    # Generators often stamp ids ("0000320193-23-000006") or file names as the title;
    # only something with a few letters in it is worth showing.
    return title if sum(ch.isalpha() for ch in title) >= 3 else None
