"""Where a cited chunk sits: the citation viewer's one read."""

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
