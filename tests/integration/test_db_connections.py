"""The database layer on both pg8000 front ends: ``native`` (local) and ``dbapi``.

The Cloud SQL connector hands out ``pg8000.dbapi`` connections, so the same code paths,
vectors included, must work on those too.
"""

from __future__ import annotations

from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.db.connection import Database, url_connection_factory, vector_literal
from tests.support.db import dbapi_factory


@pytest.fixture(params=["native", "dbapi"])
def database(request: pytest.FixtureRequest, stack: LocalStack) -> Any:
    url = stack.settings.database_url
    factory = url_connection_factory(url) if request.param == "native" else dbapi_factory(url)
    db = Database(factory, size=2)
    yield db
    db.close()


def test_named_parameters_vectors_and_arrays(database: Database) -> None:
    with database.session() as session:
        session.run("CREATE TEMP TABLE v (id int, embedding vector(3), tags text[])")
        session.run(
            "INSERT INTO v SELECT u.i, CAST(u.v AS vector), CAST(u.t AS text[])"
            " FROM unnest(CAST(:ids AS int[]), CAST(:vs AS text[]), CAST(:tags AS text[]))"
            " AS u(i, v, t)",
            ids=[1, 2],
            vs=[vector_literal([1, 0, 0]), vector_literal([0, 1, 0])],
            tags=['{"a"}', '{"b","c"}'],
        )
        nearest = session.run(
            "SELECT id FROM v ORDER BY embedding <=> CAST(:q AS vector) LIMIT 1",
            q=vector_literal([0.1, 0.9, 0]),
        )
        assert [tuple(row) for row in nearest] == [(2,)]
        assert session.scalar("SELECT embedding::text FROM v WHERE id = 1") == "[1,0,0]"
        assert session.scalar("SELECT tags FROM v WHERE id = 2") == ["b", "c"]


def test_transactions_commit_and_roll_back(database: Database) -> None:
    with database.session() as session:
        session.run("CREATE TEMP TABLE t (id int)")
        with session.transaction():
            session.run("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError), session.transaction():
            session.run("INSERT INTO t VALUES (2)")
            raise RuntimeError("abort")
        assert session.scalar("SELECT count(*) FROM t") == 1
        assert session.scalar("SELECT array_agg(id) FROM t") == [1]


def test_a_failed_statement_leaves_the_pooled_connection_usable(database: Database) -> None:
    with pytest.raises(Exception, match="division by zero"), database.transaction() as session:
        session.run("SELECT 1 / 0")
    assert database.scalar("SELECT 41 + 1") == 42


def test_prepared_statements_are_reused_and_survive_errors_and_table_changes(
    database: Database, request: pytest.FixtureRequest
) -> None:
    import pg8000.exceptions

    table = f"prepared_probe_{request.node.callspec.id}"
    database.run(f"DROP TABLE IF EXISTS {table}")
    database.run(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
    insert = f"INSERT INTO {table} (id, v) VALUES (:id, :v)"
    select = f"SELECT * FROM {table} WHERE id = :id"
    try:
        with database.session() as session:
            assert session.scalar("SHOW plan_cache_mode") == "force_custom_plan"
            session.run(insert, id=1, v="one")
            prepared = session.scalar("SELECT count(*) FROM pg_prepared_statements")
            with pytest.raises(pg8000.exceptions.DatabaseError):
                session.run(insert, id=1, v="again")  # unique violation
            session.run(insert, id=2, v="two")
            assert [tuple(row) for row in session.run(select, id=2)] == [(2, "two")]
            # One more statement prepared (the select); none re-prepared after the error.
            assert session.scalar("SELECT count(*) FROM pg_prepared_statements") == prepared + 1

            session.run(f"ALTER TABLE {table} ADD COLUMN w int")
            # The prepared select's result type changed: the server refuses it once...
            with pytest.raises(pg8000.exceptions.DatabaseError, match="result type"):
                session.run(select, id=2)
            # ...and the next call prepares it afresh.
            assert [tuple(row) for row in session.run(select, id=2)] == [(2, "two", None)]
    finally:
        database.run(f"DROP TABLE IF EXISTS {table}")


def test_a_read_only_transaction_carries_its_settings_and_refuses_writes(
    database: Database,
) -> None:
    settings: dict[str, str | int] = {
        "enable_sort": "off",
        "hnsw.ef_search": 123,
        "work_mem": "7MB",
    }
    with database.session() as session:
        # Not a temporary table: a read-only transaction may still write those.
        session.run("CREATE TABLE IF NOT EXISTS read_only_probe (id int)")
        default_work_mem = session.scalar("SHOW work_mem")
        with session.transaction(read_only=True, settings=settings):
            assert session.scalar("SHOW transaction_read_only") == "on"
            assert session.scalar("SHOW enable_sort") == "off"
            assert session.scalar("SHOW hnsw.ef_search") == "123"
            assert session.scalar("SHOW work_mem") == "7MB"
        # SET LOCAL: gone with the transaction, the pooled connection keeps its defaults.
        assert session.scalar("SHOW enable_sort") == "on"
        assert session.scalar("SHOW work_mem") == default_work_mem
        with (
            pytest.raises(Exception, match="read-only transaction"),
            session.transaction(read_only=True),
        ):
            session.run("INSERT INTO read_only_probe VALUES (1)")
        assert session.scalar("SELECT count(*) FROM read_only_probe") == 0
        session.run("DROP TABLE read_only_probe")


@pytest.mark.parametrize(
    "settings",
    [{"work_mem; DROP TABLE w": 1}, {"work_mem": "1MB'; DROP TABLE w; --"}, {"Work Mem": 1}],
)
def test_transaction_settings_must_be_plain_names_and_values(
    database: Database, settings: dict[str, Any]
) -> None:
    with database.session() as session:
        with (
            pytest.raises(ValueError, match="not a setting"),
            session.transaction(settings=settings),
        ):
            pass
        # Nothing was sent: the connection is outside any transaction.
        assert session.scalar("SELECT pg_current_xact_id_if_assigned() IS NULL")
        assert session.scalar("SELECT now() = statement_timestamp()")


def test_commit_hooks_run_until_they_have_nothing_left_to_do(database: Database) -> None:
    from shared.db.commit_hooks import before_commit, current_hook

    calls: list[bool] = []
    done = {"value": False}

    def hook(session: Any) -> None:
        calls.append(bool(session.scalar("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")))
        done["value"] = True

    with database.session() as session:
        session.run("CREATE TEMP TABLE h (id int)")
        with before_commit(hook, pending=lambda: not done["value"]):
            with session.transaction(read_only=True):
                session.scalar("SELECT 1")
            assert calls == []  # a read-only transaction has nothing to record
            with session.transaction():
                session.run("INSERT INTO h VALUES (1)")
            assert calls == [True]
            assert current_hook() is None
            with session.transaction():
                session.run("INSERT INTO h VALUES (2)")
            assert calls == [True]
        assert current_hook() is None
