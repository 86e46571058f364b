"""The HNSW indexes on chunks: what migration 0005 and ``ensure_vector_index`` build.

Each dimension's index holds its vectors as halfvec (``embedding::halfvec(N)``, partial
on ``embedding_dim = N``), and retrieval orders by the same expression
(``distance_sql``), so the planner walks the index.
"""

from __future__ import annotations

from scripts.localstack.stack import LocalStack
from shared.db.migrate import MIGRATIONS_DIR
from shared.store.vector_index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    distance_sql,
    ensure_vector_index,
    index_name,
)

PROBE = 97  # a dimension no migration indexes


def _expected(dimension: int) -> str:
    """The index's definition as ``pg_get_indexdef`` prints it."""
    return (
        f"CREATE INDEX {index_name(dimension)} ON public.chunks USING hnsw"
        f" (((embedding)::halfvec({dimension})) halfvec_cosine_ops)"
        f" WITH (m='{HNSW_M}', ef_construction='{HNSW_EF_CONSTRUCTION}')"
        f" WHERE (embedding_dim = {dimension})"
    )


def _definitions(stack: LocalStack) -> dict[str, str]:
    return {
        row[0]: row[1]
        for row in stack.database.run(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'chunks' AND indexdef LIKE '%USING hnsw%'"
        )
    }


def test_the_migrations_index_the_common_dimensions_as_halfvec(stack: LocalStack) -> None:
    found = _definitions(stack)
    for dimension in (384, 768, 1024, 1536):
        assert found[index_name(dimension)] == _expected(dimension)
    assert all("halfvec_cosine_ops" in definition for definition in found.values())


def test_migration_0005_moves_an_existing_vector_index_to_halfvec(stack: LocalStack) -> None:
    (migration,) = MIGRATIONS_DIR.glob("0005_*.sql")
    name = index_name(PROBE)
    try:
        # An index as ensure_vector_index created them before 0005.
        stack.database.run(
            f"CREATE INDEX {name} ON chunks"
            f" USING hnsw ((embedding::vector({PROBE})) vector_cosine_ops)"
            f" WITH (m = 16, ef_construction = 64) WHERE embedding_dim = {PROBE}"
        )
        with stack.database.transaction() as session:
            session.run(migration.read_text())
        found = _definitions(stack)
        assert found[name] == _expected(PROBE)
        assert not [index for index in found if index.endswith("_half")]
        # Applied again, it changes nothing.
        with stack.database.transaction() as session:
            session.run(migration.read_text())
        assert _definitions(stack) == found
    finally:
        stack.database.run(f"DROP INDEX IF EXISTS {name}")


def test_a_new_dimension_gets_the_same_index_and_queries_walk_it(stack: LocalStack) -> None:
    name = index_name(PROBE)
    try:
        with stack.database.transaction() as session:
            ensure_vector_index(session, PROBE)
        assert _definitions(stack)[name] == _expected(PROBE)
        with stack.database.transaction() as session:
            session.run("SET LOCAL enable_seqscan = off")
            plan = "\n".join(
                str(row[0])
                for row in session.run(
                    f"EXPLAIN SELECT c.id FROM chunks c WHERE c.embedding_dim = {PROBE}"
                    f" ORDER BY {distance_sql(PROBE)} LIMIT 10",
                    q="[" + ",".join(["0.1"] * PROBE) + "]",
                )
            )
        assert name in plan
    finally:
        stack.database.run(f"DROP INDEX IF EXISTS {name}")


def test_dimensions_beyond_the_halfvec_limit_get_no_index(stack: LocalStack) -> None:
    with stack.database.transaction() as session:
        ensure_vector_index(session, 4001)
    assert index_name(4001) not in _definitions(stack)
