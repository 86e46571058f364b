"""Turn document bytes into text with structure (pages, headings, lists, tables).

The type is detected from the bytes, never from the file name, and every failure
caused by the input is raised as a :class:`~shared.errors.PermanentError` subclass with
a message a person can act on. Usage::

    parsed = parse_document(data, filename="report.pdf")
"""

from __future__ import annotations

from shared.config import ParseLimits, get_parse_limits
from shared.errors import EmptyContentError, LimitExceededError
from shared.models import ParsedDocument
from shared.parsing.builder import DocumentBuilder
from shared.parsing.detect import (
    DOCX,
    HTML,
    IMAGE_TYPES,
    JPEG,
    MARKDOWN,
    PDF,
    PLAIN,
    PNG,
    TIFF,
    WEBP,
    detect_content_type,
    sniff,
)

__all__ = [
    "DOCX",
    "HTML",
    "IMAGE_TYPES",
    "JPEG",
    "MARKDOWN",
    "PDF",
    "PLAIN",
    "PNG",
    "TIFF",
    "WEBP",
    "detect_content_type",
    "parse_document",
    "sniff",
]

_FORMAT_NAMES = {
    PDF: "PDF document",
    DOCX: "DOCX document",
    HTML: "HTML document",
    MARKDOWN: "Markdown document",
    PLAIN: "Text document",
    PNG: "PNG image",
    JPEG: "JPEG image",
    TIFF: "TIFF image",
    WEBP: "WebP image",
}


def parse_document(
    data: bytes, *, filename: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    """Parse a document of any supported type into text and structural blocks.

    Args:
        data: The document's bytes.
        filename: The original file name; used only to choose between Markdown and
            plain text when the content is ambiguous, never to decide the type.
        limits: Parse limits; defaults to :func:`shared.config.get_parse_limits`.

    Returns:
        The parsed document: text, blocks with offsets, page spans and line boxes for
        PDFs and images (scanned pages and images read by OCR), title.

    Raises:
        LimitExceededError: Too many bytes, pages or characters, a zip bomb, an image
            of too many pixels, or too many pages (or seconds) of OCR.
        UnsupportedContentError: A type Ragline does not parse (the message names it).
        EncryptedContentError: A password-protected PDF or Office document.
        CorruptContentError: A damaged file of a supported type.
        EmptyContentError: No extractable text (an empty file, a scan or image in which
            OCR finds no text).
    """
    limits = limits or get_parse_limits()
    if len(data) > limits.max_bytes:
        raise LimitExceededError(
            f"Document is {_megabytes(len(data))}; the limit is {_megabytes(limits.max_bytes)}",
            code="too_large",
        )
    if not data or data.isspace():
        raise EmptyContentError("Document is empty", code="empty_document")
    detection = sniff(data, filename)
    builder = DocumentBuilder(detection.content_type, max_chars=limits.max_text_chars)
    # Format modules import their libraries lazily: a function that only parses text
    # should not pay pdfium's or lxml's import time on a cold start.
    if detection.content_type == PDF:
        from shared.parsing.pdf import parse_pdf

        title = parse_pdf(data, builder, limits)
    elif detection.content_type == DOCX:
        from shared.parsing.docx import parse_docx

        title = parse_docx(data, builder, limits)
    elif detection.content_type in IMAGE_TYPES:
        # Read by OCR; its engine loads only here, on the first image or scanned page.
        from shared.parsing.image import parse_image

        parse_image(data, builder, limits)
        title = None
    elif detection.content_type == HTML:
        from shared.parsing.html import parse_html, redecode

        assert detection.text is not None
        title = parse_html(redecode(data, detection.text, detection.encoding), builder)
    else:
        from shared.parsing.text import parse_text

        assert detection.text is not None
        title = parse_text(detection.text, detection.content_type, builder)
    if builder.block_count == 0:
        name = _FORMAT_NAMES.get(detection.content_type, "Document")
        raise EmptyContentError(f"{name} contains no text", code="empty_document")
    metadata = {"encoding": detection.encoding} if detection.encoding else {}
    return builder.build(title=title, metadata=metadata)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"
