"""Schema migrations: versioned, applied once, in order."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from scripts.localstack.stack import LocalStack
from shared.db.migrate import discover, migrate


def test_migrations_are_applied_once(stack: LocalStack) -> None:
    assert migrate(stack.database) == [], "the stack already applied everything"
    applied = stack.database.run("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(m.version, m.name) for m in discover()] == [tuple(row) for row in applied]
    extension = stack.database.scalar("SELECT extversion FROM pg_extension WHERE extname='vector'")
    assert tuple(int(part) for part in extension.split(".")[:2]) >= (0, 8)


def test_a_new_migration_is_applied_and_recorded(stack: LocalStack, tmp_path: Path) -> None:
    for migration in discover():
        (tmp_path / migration.path.name).write_text(migration.path.read_text())
    (tmp_path / "9999_probe.sql").write_text("CREATE TABLE migration_probe (id int);")
    try:
        applied = migrate(stack.database, tmp_path)
        assert [m.version for m in applied] == [9999]
        assert migrate(stack.database, tmp_path) == []
        assert stack.database.scalar("SELECT count(*) FROM migration_probe") == 0
    finally:
        stack.database.run("DROP TABLE IF EXISTS migration_probe")
        stack.database.run("DELETE FROM schema_migrations WHERE version = 9999")


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(RuntimeError, match="duplicate"):
        discover(tmp_path)


def test_hnsw_and_full_text_indexes_exist(stack: LocalStack) -> None:
    indexes = {
        row[0]: row[1]
        for row in stack.database.run(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"
        )
    }
    assert "gin (tsv)" in indexes["chunks_tsv"]
    hnsw = [definition for definition in indexes.values() if "hnsw" in definition]
    assert hnsw and all("halfvec_cosine_ops" in definition for definition in hnsw)


def test_function_users_get_table_privileges_through_the_app_role(stack: LocalStack) -> None:
    from shared.db.connection import Database, url_connection_factory
    from shared.db.migrate import grant_app_role
    from shared.store.vector_index import ensure_vector_index, index_name

    admin = stack.database
    admin.run("DROP ROLE IF EXISTS fn_probe")
    admin.run("CREATE ROLE fn_probe LOGIN")
    url = stack.settings.database_url.replace("postgres@", "fn_probe@")
    function_db = Database(url_connection_factory(url), size=1)
    try:
        with pytest.raises(Exception, match="permission denied"):
            function_db.run("SELECT count(*) FROM documents")
        assert grant_app_role(admin, ["fn_probe", " "]) == ["fn_probe"]
        assert grant_app_role(admin, ["fn_probe"]) == ["fn_probe"], "granting is idempotent"

        function_db.close()
        # The function user reads what the owner wrote (a row only this test writes).
        marker = str(uuid.uuid4())
        admin.run(
            "INSERT INTO document_events (document_id, kb_id, status)"
            " VALUES (CAST(:m AS uuid), CAST(:m AS uuid), 'probe')",
            m=marker,
        )
        assert (
            function_db.scalar(
                "SELECT count(*) FROM document_events WHERE kb_id = CAST(:m AS uuid)", m=marker
            )
            == 1
        )
        with function_db.transaction() as session:
            session.run("INSERT INTO workspaces (name) VALUES ('probe-ws') ON CONFLICT DO NOTHING")
            session.run("DELETE FROM workspaces WHERE name = 'probe-ws'")
            # Not the table owner: a new dimension's index is skipped, not an error.
            ensure_vector_index(session, 97)
        assert not admin.scalar(
            "SELECT count(*) FROM pg_indexes WHERE indexname = :n", n=index_name(97)
        )
        with pytest.raises(RuntimeError, match="does not exist"):
            grant_app_role(admin, ["nobody_here"])
    finally:
        function_db.close()
        admin.run("DELETE FROM document_events WHERE status = 'probe'")
        admin.run("DROP OWNED BY fn_probe")
        admin.run("DROP ROLE IF EXISTS fn_probe")
