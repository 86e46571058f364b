"""Chunks and their vectors: keyed upserts on ``(version_id, ordinal)``, vector writes.

Retrieval's reads of chunks live with retrieval's statements; these are the pipeline's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session
from shared.db.connection import copy_id_vectors


@dataclass(frozen=True)
class NewChunk:
    """A chunk of a version's text, as the chunk step writes it."""

    ordinal: int
    text: str
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    heading_path: tuple[str, ...]
    token_count: int
    # Where the chunk sits on its pages, for the citation viewer.
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ChunkText:
    """A chunk's id and text: what the embed step embeds."""

    id: int
    text: str


@dataclass(frozen=True)
class PooledChunk:
    """A chunk of any version waiting for its vector: what fills an embeddings request."""

    id: int
    version_id: str
    text: str


@dataclass(frozen=True)
class _Ordinal:
    ordinal: int


def upsert_chunks(
    session: Session,
    *,
    version_id: str,
    document_id: str,
    kb_id: str,
    chunks: Sequence[NewChunk],
) -> None:
    """Insert the version's chunks, or update those of the same ordinals.

    A chunk whose text is unchanged keeps its embedding (a redelivered chunk message
    reproduces the same text); a changed one loses it, to be embedded again.

    Args:
        session: A session inside the caller's transaction.
        version_id: The version the chunks belong to.
        document_id: Its document.
        kb_id: Its knowledge base.
        chunks: The chunks, in any order.
    """
    session.run(
        "INSERT INTO chunks (version_id, document_id, kb_id, ordinal, text, page_start,"
        " page_end, char_start, char_end, heading_path, token_count, metadata)"
        " SELECT CAST(:v AS uuid), CAST(:d AS uuid), CAST(:k AS uuid), u.ordinal, u.text,"
        " u.page_start, u.page_end, u.char_start, u.char_end,"
        " CAST(u.heading_path AS text[]), u.token_count, CAST(u.metadata AS jsonb)"
        " FROM unnest(CAST(:ordinals AS int[]), CAST(:texts AS text[]),"
        " CAST(:page_starts AS int[]), CAST(:page_ends AS int[]), CAST(:char_starts AS int[]),"
        " CAST(:char_ends AS int[]), CAST(:headings AS text[]), CAST(:tokens AS int[]),"
        " CAST(:metadata AS text[]))"
        " AS u(ordinal, text, page_start, page_end, char_start, char_end, heading_path,"
        " token_count, metadata)"
        " ON CONFLICT (version_id, ordinal) DO UPDATE SET text = excluded.text,"
        " page_start = excluded.page_start, page_end = excluded.page_end,"
        " char_start = excluded.char_start, char_end = excluded.char_end,"
        " heading_path = excluded.heading_path, token_count = excluded.token_count,"
        " metadata = excluded.metadata,"
        # A redelivered chunk message reproduces the same text: keep its embedding.
        " embedding = CASE WHEN chunks.text = excluded.text THEN chunks.embedding END,"
        " embedded_at = CASE WHEN chunks.text = excluded.text THEN chunks.embedded_at END",
        v=version_id,
        d=document_id,
        k=kb_id,
        ordinals=[chunk.ordinal for chunk in chunks],
        texts=[chunk.text for chunk in chunks],
        page_starts=[chunk.page_start for chunk in chunks],
        page_ends=[chunk.page_end for chunk in chunks],
        char_starts=[chunk.char_start for chunk in chunks],
        char_ends=[chunk.char_end for chunk in chunks],
        headings=[_pg_text_array(chunk.heading_path) for chunk in chunks],
        tokens=[chunk.token_count for chunk in chunks],
        # The layout metadata is sent as text[] and cast per row, like the other arrays.
        metadata=[json.dumps(chunk.metadata) for chunk in chunks],
    )


def _pg_text_array(values: Sequence[str]) -> str:
    """Render a list as a PostgreSQL text[] literal (for arrays of arrays via unnest)."""
    escaped = ['"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values]
    return "{" + ",".join(escaped) + "}"


def delete_chunks_from(session: Session, version_id: str, ordinal: int) -> None:
    """Delete the version's chunks numbered ``ordinal`` and above (a shorter re-chunk)."""
    session.run(
        "DELETE FROM chunks WHERE version_id = CAST(:v AS uuid) AND ordinal >= :n",
        v=version_id,
        n=ordinal,
    )


def delete_version_chunks(session: Session, version_id: str) -> None:
    """Delete every chunk of the version."""
    session.run("DELETE FROM chunks WHERE version_id = CAST(:v AS uuid)", v=version_id)


def delete_document_chunks(session: Session, document_id: str) -> None:
    """Delete every chunk of every version of the document."""
    session.run("DELETE FROM chunks WHERE document_id = CAST(:d AS uuid)", d=document_id)


def unembedded_chunks(
    database: Database, version_id: str, first_ordinal: int, last_ordinal: int
) -> list[ChunkText]:
    """The version's chunks in the ordinal range that have no embedding yet, in order."""
    return database.records(
        ChunkText,
        "SELECT id, text FROM chunks WHERE version_id = CAST(:v AS uuid)"
        " AND ordinal BETWEEN :first AND :last AND embedding IS NULL ORDER BY ordinal",
        v=version_id,
        first=first_ordinal,
        last=last_ordinal,
    )


def lock_unembedded(
    session: Session, version_id: str, first_ordinal: int, last_ordinal: int
) -> list[ChunkText]:
    """Lock the version's unembedded chunks in the ordinal range, in order, and return them.

    Waits for rows another transaction holds (a request filled from the pool): once it
    commits they have vectors and are left out, once it lets them go they are returned.
    """
    return session.records(
        ChunkText,
        "SELECT id, text FROM chunks WHERE version_id = CAST(:v AS uuid)"
        " AND ordinal BETWEEN :first AND :last AND embedding IS NULL"
        " ORDER BY ordinal FOR UPDATE",
        v=version_id,
        first=first_ordinal,
        last=last_ordinal,
    )


def claim_pool(
    session: Session, *, model: str, dim: int, skip: Sequence[int], limit: int
) -> list[PooledChunk]:
    """Lock up to ``limit`` unembedded chunks of any version embedding with ``model``/``dim``.

    Oldest versions first, in ordinal order; rows another transaction holds are passed
    over (``SKIP LOCKED``), and so are ``skip`` (rows this transaction holds already).
    """
    return session.records(
        PooledChunk,
        "SELECT c.id, CAST(c.version_id AS text) AS version_id, c.text FROM chunks c"
        " JOIN document_versions v ON v.id = c.version_id"
        " JOIN knowledge_bases k ON k.id = c.kb_id"
        " WHERE c.embedding IS NULL AND v.status = 'embedding'"
        " AND k.embedding_model = :model AND k.embedding_dim = :dim"
        " AND NOT (c.id = ANY(CAST(:skip AS bigint[])))"
        " ORDER BY v.created_at, c.version_id, c.ordinal"
        " LIMIT :limit FOR UPDATE OF c SKIP LOCKED",
        model=model,
        dim=dim,
        skip=list(skip),
        limit=limit,
    )


def pool_tokens(database: Database, *, model: str, dim: int, cap: int) -> int:
    """About how many tokens wait for vectors from ``model``/``dim`` (counted to ``cap``).

    The chunker's own token counts: an estimate of what the provider will count.
    """
    return int(
        database.scalar(
            "SELECT coalesce(sum(t.token_count), 0) FROM (SELECT c.token_count FROM chunks c"
            " JOIN document_versions v ON v.id = c.version_id"
            " JOIN knowledge_bases k ON k.id = c.kb_id"
            " WHERE c.embedding IS NULL AND v.status = 'embedding'"
            " AND k.embedding_model = :model AND k.embedding_dim = :dim"
            " LIMIT :rows) t",
            model=model,
            dim=dim,
            rows=max(1, cap),
        )
    )


def unembedded_ordinals(database: Database, version_id: str) -> list[int]:
    """The ordinals of the version's chunks that have no embedding yet, ascending."""
    return [
        found.ordinal
        for found in database.records(
            _Ordinal,
            "SELECT ordinal FROM chunks WHERE version_id = CAST(:v AS uuid)"
            " AND embedding IS NULL ORDER BY ordinal",
            v=version_id,
        )
    ]


def count_unembedded(session: Session, version_id: str) -> int:
    """How many chunks of the version still have no embedding."""
    return int(
        session.scalar(
            "SELECT count(*) FROM chunks WHERE version_id = CAST(:v AS uuid) AND embedding IS NULL",
            v=version_id,
        )
    )


def write_vectors(session: Session, ids: list[int], vectors: list[list[float]], dim: int) -> None:
    """Store ``vectors`` on the chunks ``ids``, in the caller's transaction.

    The vectors cross in COPY's binary format (exact float32s, no formatting here or
    parsing there) into this connection's staging table, emptied at every commit, then
    onto their chunks in the same transaction.
    """
    import io

    session.run(
        "CREATE TEMP TABLE IF NOT EXISTS pg_temp.embed_vectors"
        " (id bigint NOT NULL, embedding vector NOT NULL) ON COMMIT DELETE ROWS"
    )
    session.run(
        "COPY pg_temp.embed_vectors (id, embedding) FROM STDIN (FORMAT binary)",
        stream=io.BytesIO(copy_id_vectors(ids, vectors)),
    )
    session.run(
        "UPDATE chunks SET embedding = v.embedding, embedding_dim = :dim,"
        " embedded_at = now() FROM pg_temp.embed_vectors v WHERE chunks.id = v.id"
        # The staging table has no statistics: naming the ids keeps the plan on the
        # primary key rather than a hash join over every chunk.
        " AND chunks.id = ANY(CAST(:ids AS bigint[]))",
        ids=ids,
        dim=dim,
    )
