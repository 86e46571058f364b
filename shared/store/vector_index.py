"""Per-dimension HNSW indexes on the untyped ``chunks.embedding`` column.

pgvector indexes need a fixed dimension, while knowledge bases may use models of
different dimensions. An expression index on ``embedding::halfvec(N)`` restricted to
``embedding_dim = N`` serves every knowledge base of dimension N; queries must repeat
the same expression (:func:`distance_sql`) and predicate to use it.

The index holds the vectors as ``halfvec`` (16-bit floats), while the column keeps them
at full precision. Inserting a chunk into the graph is nearly all a vector write costs
(it reads and rewrites the pages of the chunk's neighbours); with half the bytes per
vector the index has about half the pages, and each insert logs less WAL. Measured at
100k 384-d chunks (interleaved rounds of 10 writers through ``embed_batch``): server
CPU per chunk written -17 to -22%, WAL per chunk -20% (more between checkpoints),
index size -43% (111 MB against 194 MB), recall@10 against exact search unchanged at
ef_search 40 and 100 (docs/bench/vector_writes.md). Exact search and the scores
retrieval reports stay on the full-precision vectors. Migration 0005 moved the existing
indexes to this definition.
"""

from __future__ import annotations

import logging

from shared.db import Database, Session

log = logging.getLogger(__name__)

# The graph's parameters (pgvector's defaults): neighbours per node and the candidate
# list while inserting. Lower values insert faster but lost recall at ef_search 100
# (m = 12: -0.5 point of recall@10; ef_construction 32-48: -0.7 to -1 point).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# HNSW on halfvec supports up to 4,000 dimensions (on vector, 2,000).
MAX_INDEXED_DIMENSION = 4000


_INDEX_PREFIX = "chunks_embedding_hnsw_"


def index_name(dimension: int) -> str:
    """The name of the HNSW index serving ``dimension``."""
    return f"{_INDEX_PREFIX}{dimension}"


def indexed_chunks_sql(dimension_sql: str) -> str:
    """SQL for :func:`indexed_chunks` of the dimension the expression ``dimension_sql`` holds."""
    return (
        "(SELECT greatest(i.reltuples, 0)::bigint FROM pg_class i"
        f" WHERE i.oid = to_regclass('{_INDEX_PREFIX}' || {dimension_sql}))"
    )


def indexed_chunks(database: Database, dimension: int) -> int:
    """Chunks in the HNSW graph of ``dimension``, as the server's statistics estimate it.

    The graph holds every knowledge base's chunks of that dimension, and a walk crosses
    all of it whatever the scope. The estimate (``pg_class.reltuples``) is kept by
    index builds, VACUUM and ANALYZE; 0 when there is no index or no estimate yet.
    """
    value = database.scalar(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(:n)", n=index_name(dimension)
    )
    return max(int(value or 0), 0)


def distance_sql(dimension: int, alias: str = "c", query: str = ":q") -> str:
    """Cosine distance to the ``query`` parameter, as the HNSW index of ``dimension`` orders.

    The expression repeats the index's own (``embedding::halfvec(N)``): ORDER BY it with
    ``embedding_dim = N`` in the WHERE clause and the planner can walk the index.
    """
    return f"{alias}.embedding::halfvec({dimension}) <=> CAST({query} AS halfvec({dimension}))"


def index_ddl(dimension: int, name: str | None = None) -> str:
    """``CREATE INDEX`` for the HNSW (cosine) index of ``dimension`` (migration 0005's)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {name or index_name(dimension)} ON chunks"
        f" USING hnsw ((embedding::halfvec({dimension})) halfvec_cosine_ops)"
        f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        f" WHERE embedding_dim = {dimension}"
    )


def ensure_vector_index(session: Session, dimension: int) -> None:
    """Create the HNSW (cosine) index for ``dimension`` if it does not exist yet.

    Runs in the caller's transaction. Migrations create the common dimensions' indexes;
    for others this needs table ownership, which production functions lack: then the
    knowledge base still works, with exact search, until a migration adds the index.
    """
    if not 1 <= dimension <= MAX_INDEXED_DIMENSION:
        # Larger models still work, with exact search instead of an index.
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
    session.run(index_ddl(dimension))
