"""Per-dimension HNSW indexes on the untyped ``chunks.embedding`` column.

pgvector indexes need a fixed dimension, while knowledge bases may use models of
different dimensions. An expression index on ``embedding::vector(N)`` restricted to
``embedding_dim = N`` serves every knowledge base of dimension N; queries must repeat
the same expression and predicate to use it.
"""

from __future__ import annotations

import logging

from shared.db.connection import Session

log = logging.getLogger(__name__)


def index_name(dimension: int) -> str:
    """The name of the HNSW index serving ``dimension``."""
    return f"chunks_embedding_hnsw_{dimension}"


def ensure_vector_index(session: Session, dimension: int) -> None:
    """Create the HNSW (cosine) index for ``dimension`` if it does not exist yet.

    Runs in the caller's transaction. Migrations create the common dimensions' indexes;
    for others this needs table ownership, which production functions lack: then the
    knowledge base still works, with exact search, until a migration adds the index.
    """
    if not 1 <= dimension <= 2000:
        # HNSW on `vector` supports up to 2,000 dimensions; larger models still work,
        # with exact search instead of an index.
        return
    exists = session.scalar(
        "SELECT 1 FROM pg_indexes WHERE tablename = 'chunks' AND indexname = :n",
        n=index_name(dimension),
    )
    if exists:
        return
    may_create = session.scalar(
        "SELECT pg_has_role(current_user, tableowner, 'USAGE')"
        " FROM pg_tables WHERE tablename = 'chunks'"
    )
    if not may_create:
        log.warning("no HNSW index for dimension %d: not the owner of chunks", dimension)
        return
    session.run(
        f"CREATE INDEX IF NOT EXISTS {index_name(dimension)} ON chunks "
        f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) "
        f"WITH (m = 16, ef_construction = 64) WHERE embedding_dim = {dimension}"
    )
