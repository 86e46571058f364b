"""Reads of visible chunks by id or document: the citation viewer's and a document's text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.db import Database
from shared.store.scope import ScopeSql


@dataclass(frozen=True)
class CitedChunk:
    """A visible chunk with its document's name and type, and its stored geometry.

    ``metadata`` holds the chunk's line boxes and page sizes (PDFs chunked with them).
    """

    id: int
    document_id: str
    version_id: str
    kb_id: str
    filename: str
    content_type: str
    char_start: int
    char_end: int
    text: str
    page_start: int | None
    page_end: int | None
    metadata: dict[str, Any] | None
    source_id: str | None
    origin_url: str | None
    origin_revision: str | None


def cited_chunk(database: Database, scope: ScopeSql, chunk_id: int) -> CitedChunk | None:
    """The chunk ``chunk_id`` if ``scope`` may read it, else None.

    Visibility is the retrieval scope's own predicate (knowledge bases in scope, inside
    the caller's workspace, active versions only), so a citation is viewable exactly
    when a search could have returned it.
    """
    return database.record(
        CitedChunk,
        "SELECT c.id, c.document_id::text AS document_id, c.version_id::text AS version_id,"
        " c.kb_id::text AS kb_id, d.filename, v.content_type, c.char_start, c.char_end,"
        " c.text, c.page_start, c.page_end, c.metadata, d.source_id::text AS source_id,"
        " d.origin_url, d.origin_revision::text AS origin_revision"
        " FROM chunks c JOIN documents d ON d.id = c.document_id"
        " JOIN document_versions v ON v.id = c.version_id"
        f"{scope.chunks()} AND c.id = :id",
        id=chunk_id,
        **scope.params,
    )


@dataclass(frozen=True)
class DocumentSpan:
    """A visible chunk's text and where it sits in its document's parsed text."""

    ordinal: int
    char_start: int
    char_end: int
    page_start: int | None
    page_end: int | None
    text: str


def document_spans(
    database: Database, scope: ScopeSql, document_id: str, start: int, end: int
) -> list[DocumentSpan]:
    """The visible chunks of a document that overlap characters ``start..end``, in order.

    Visibility is the scope's, as for :func:`cited_chunk`: only the active version of a
    document in a knowledge base the caller may read (an archived document has none).
    """
    return database.records(
        DocumentSpan,
        "SELECT c.ordinal, c.char_start, c.char_end, c.page_start, c.page_end, c.text"
        f" FROM chunks c{scope.chunks()} AND c.document_id = CAST(:doc AS uuid)"
        " AND c.char_end > :start AND c.char_start < :end ORDER BY c.ordinal",
        doc=document_id,
        start=start,
        end=end,
        **scope.params,
    )


@dataclass(frozen=True)
class _TextEnd:
    text_end: int | None


def document_text_end(database: Database, scope: ScopeSql, document_id: str) -> int:
    """Where the visible text of a document ends (0 if none of it is visible)."""
    found = database.record(
        _TextEnd,
        "SELECT max(c.char_end) AS text_end"
        f" FROM chunks c{scope.chunks()} AND c.document_id = CAST(:doc AS uuid)",
        doc=document_id,
        **scope.params,
    )
    return found.text_end or 0 if found is not None else 0
