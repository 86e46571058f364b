"""Citation viewer data: where a cited chunk sits in its document, to highlight it.

The parse step captures each PDF line's box (see ``shared.parsing.pdf_reading``; for
scanned pages and images, each OCR'd line's: ``shared.parsing.ocr_layout``) and the chunk
step stores the boxes of each chunk's lines, with its pages' sizes, in
``chunks.metadata`` (see :func:`shared.chunking.layout_metadata`). A viewer request is
therefore one primary-key read: no bucket read, no PDF work.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from shared.db import Database
from shared.ids import is_uuid
from shared.parsing.detect import IMAGE_TYPES, PDF
from shared.store.citations import CitedChunk, cited_chunk
from shared.store.scope import Scope, compile_scope

# chunks.id is a bigint: a larger id cannot exist (and would be a database error).
_MAX_CHUNK_ID = 2**63 - 1


def citation_viewer(database: Database, chunk_id: int, scope: Scope) -> dict[str, Any] | None:
    """What a frontend needs to show a cited chunk in its document and highlight it.

    Only chunks a search of ``scope`` could return are visible (the knowledge bases
    in scope, inside the caller's workspace, active versions only), checked in the
    query. Anything else reads as "not found", so a caller cannot tell a chunk it may
    not see from a missing one.

    Args:
        database: The database.
        chunk_id: ``chunks.id`` (a citation's ``chunk_id``).
        scope: What the caller may read (its knowledge bases and workspace).

    Returns:
        None if the chunk is not visible, else a JSON-ready object::

            {
              "chunk_id": 42, "document_id": "...", "version_id": "...", "kb_id": "...",
              "filename": "report.pdf", "content_type": "application/pdf",
              "kind": "pdf",          # "pdf", "image" (PNG, JPEG, TIFF, WebP), or "text"
              "char_start": 1200, "char_end": 2380,  # offsets in the parsed text
              "text": "...",          # the chunk's text (parsed text[char_start:char_end])
              "page_start": 3, "page_end": 4,        # None for unpaged formats
              "pages": [              # one per page of the chunk; [] for kind "text"
                {"number": 3, "width": 612.0, "height": 792.0,
                 "boxes": [[x0, y0, x1, y1], ...]},
                ...
              ],
            }

        Page sizes and boxes are in PDF points with the origin at the top-left corner
        of the page as displayed (crop box, rotation applied), y downwards: scale by
        ``rendered width / width`` to draw them. For an image they are its pixels (a
        TIFF's pages are its frames), turned upright as its EXIF orientation says. A box
        is one line of the chunk (a chunk that starts or ends inside a line highlights
        that whole line). ``width`` and
        ``height`` are None, and ``boxes`` empty, for PDFs chunked before the geometry
        was recorded and for pages whose text pdfium cannot position.
    """
    if not 0 < chunk_id <= _MAX_CHUNK_ID:
        return None
    readable = [kb for kb in scope.kb_ids if is_uuid(kb)]
    if not readable:
        return None
    chunk = cited_chunk(database, compile_scope(replace(scope, kb_ids=readable)), chunk_id)
    if chunk is None:
        return None
    kind = _kind(chunk.content_type)
    metadata = chunk.metadata
    if isinstance(metadata, str):  # jsonb arrives parsed from pg8000; be lenient anyway
        metadata = json.loads(metadata)
    return {
        "chunk_id": int(chunk.id),
        "document_id": chunk.document_id,
        "version_id": chunk.version_id,
        "kb_id": chunk.kb_id,
        "filename": chunk.filename,
        "content_type": chunk.content_type,
        "kind": kind,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "text": chunk.text,
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        "pages": (
            _pages(metadata or {}, chunk.page_start, chunk.page_end) if kind != "text" else []
        ),
        "origin": _origin(chunk),
    }


def _origin(chunk: CitedChunk) -> dict[str, Any] | None:
    """Where a source's document came from (``origin`` of the document routes too)."""
    if chunk.source_id is None and chunk.origin_url is None:
        return None
    revision = json.loads(chunk.origin_revision) if chunk.origin_revision else {}
    return {"source_id": chunk.source_id, "url": chunk.origin_url, "revision": revision}


def _kind(content_type: str) -> str:
    """How a viewer shows the document: PDF pages, image pages, or text."""
    if content_type == PDF:
        return "pdf"
    return "image" if content_type in IMAGE_TYPES else "text"


def _pages(
    metadata: dict[str, Any], page_start: int | None, page_end: int | None
) -> list[dict[str, Any]]:
    """The chunk's pages with their sizes and the boxes on each, in page order."""
    boxes: dict[int, list[list[float]]] = {}
    for page, *box in metadata.get("boxes", []):
        boxes.setdefault(int(page), []).append(box)
    numbers = set(boxes)
    if page_start is not None:
        numbers.update(range(page_start, (page_end or page_start) + 1))
    sizes: dict[str, list[float]] = metadata.get("page_sizes", {})
    pages = []
    for number in sorted(numbers):
        width, height = sizes.get(str(number)) or (None, None)
        pages.append(
            {"number": number, "width": width, "height": height, "boxes": boxes.get(number, [])}
        )
    return pages
