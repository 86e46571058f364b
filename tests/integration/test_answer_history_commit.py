"""A question's bookkeeping commits asynchronously, and only it does.

A question's turn rows (``history.start_session``, ``start_turn``, ``finish_turn``) and
its quota counters (``quotas.take``, ``quotas.add``) are written with
``synchronous_commit = off`` for their own transaction: the commit
does not wait for the WAL to reach the disk. Checked on the real server through the
connection's own WAL statistics (``pg_stat_get_backend_io``): an asynchronous commit
makes the backend flush nothing, a synchronous one flushes. The setting must not
stay on the pooled connection for the statements that follow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.answering.types import Usage
from shared.auth import Principal
from shared.db import Database
from shared.db.connection import url_connection_factory
from shared.store import history

WAL_FLUSHES = (
    "SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_get_backend_io(pg_backend_pid())"
    " WHERE object = 'wal'"
)


@pytest.fixture
def database(stack: LocalStack) -> Iterator[Database]:
    """One connection, so the statistics read are those of the connection that wrote."""
    db = Database(url_connection_factory(stack.settings.database_url), size=1)
    db.run("INSERT INTO workspaces (name) VALUES ('commit-test') ON CONFLICT DO NOTHING")
    yield db
    db.run("DELETE FROM chat_sessions WHERE principal = 'commit-tester'")
    db.close()


def wal_flushes(database: Database) -> int:
    # A backend reports its statistics when idle; this makes the next report immediate.
    database.run("SELECT pg_stat_force_next_flush()")
    database.run("SELECT 1")
    return int(database.scalar(WAL_FLUSHES))


def test_turn_writes_do_not_wait_for_the_wal_flush(database: Database) -> None:
    principal = Principal(id="commit-tester", workspace="commit-test")
    turn: dict[str, Any] = {
        "standalone_question": "q",
        "kb_ids": [str(uuid.uuid4())],
        "top_k": 8,
        "filters": {},
        "retrieved": [],
    }
    before = wal_flushes(database)
    session_id, first = history.start_session(database, principal, question="q", **turn)
    finish: dict[str, Any] = {"citations": [], "usage": Usage(model="m"), "generator": "llm"}
    history.finish_turn(
        database, first, status="answered", answer="a", first_token_ms=1, latency_ms=2, **finish
    )
    second = history.start_turn(database, session_id=session_id, question="q2", **turn)
    history.finish_turn(
        database, second, status="failed", answer="", first_token_ms=None, latency_ms=3, **finish
    )
    assert wal_flushes(database) == before
    # Written all the same, and numbered in order.
    rows = database.run(
        "SELECT number, status FROM chat_turns WHERE session_id = CAST(:s AS uuid) ORDER BY number",
        s=session_id,
    )
    assert rows == [[1, "answered"], [2, "failed"]]
    # The connection keeps the server's default for what it runs next ...
    assert database.scalar("SHOW synchronous_commit") == "on"
    # ... so an ordinary write still waits for its flush (which the probe does see).
    history.record_feedback(database, principal, second, "up", "")
    assert wal_flushes(database) > before


def test_quota_counters_and_charges_do_not_wait_for_the_wal_flush(database: Database) -> None:
    import datetime as dt

    from shared.store import quotas

    window = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    before = wal_flushes(database)
    taken = [
        quotas.take(database, "requests_per_minute", "flush-test", window, 1, 2) for _ in "abc"
    ]
    quotas.add(database, "monthly_tokens", "flush-test", window, 500)
    quotas.add(database, "monthly_tokens", "flush-test", window, 250)
    assert wal_flushes(database) == before
    # Counted all the same: two fit the limit, the third does not.
    assert [t.used if t else None for t in taken] == [1, 2, None]
    assert quotas.used(database, "requests_per_minute", "flush-test", window) == 2
    assert quotas.used(database, "monthly_tokens", "flush-test", window) == 750
    assert database.scalar("SHOW synchronous_commit") == "on"
    database.run("DELETE FROM quota_counters WHERE subject = 'flush-test'")
