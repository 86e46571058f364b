"""Quotas: the statements behind workspace limits and windowed usage counters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.db import Database, Session
from shared.store.async_commit import ASYNC_COMMIT


@dataclass(frozen=True)
class WorkspaceLimits:
    """A workspace's limits as its admins set them (None: the settings' default)."""

    workspace_id: str
    requests_per_minute: int | None
    api_key_requests_per_minute: int | None
    questions_per_day: int | None
    tokens_per_question: int | None
    monthly_tokens: int | None
    updated_by: str
    updated_at: dt.datetime


@dataclass(frozen=True)
class Taken:
    """A counter after a take that fit its limit."""

    used: int


@dataclass(frozen=True)
class Usage:
    """A counter's value in one window."""

    used: int


@dataclass(frozen=True)
class NamedWorkspaceLimits:
    """A workspace found by name, with the limits its admins set (None: default)."""

    workspace_id: str
    requests_per_minute: int | None
    api_key_requests_per_minute: int | None
    questions_per_day: int | None
    tokens_per_question: int | None
    monthly_tokens: int | None


_LIMIT_COLUMNS = (
    "l.workspace_id::text AS workspace_id, l.requests_per_minute,"
    " l.api_key_requests_per_minute, l.questions_per_day, l.tokens_per_question,"
    " l.monthly_tokens, l.updated_by, l.updated_at"
)


def get_limits(database: Database | Session, workspace_id: str) -> WorkspaceLimits | None:
    """The limits the admins of ``workspace_id`` set, or None (all defaults)."""
    return database.record(
        WorkspaceLimits,
        f"SELECT {_LIMIT_COLUMNS} FROM workspace_limits l WHERE l.workspace_id = CAST(:w AS uuid)",
        w=workspace_id,
    )


def limits_by_name(database: Database | Session, workspace: str) -> NamedWorkspaceLimits | None:
    """The workspace named ``workspace`` with its limits, or None if there is none."""
    return database.record(
        NamedWorkspaceLimits,
        "SELECT w.id::text AS workspace_id, l.requests_per_minute,"
        " l.api_key_requests_per_minute, l.questions_per_day, l.tokens_per_question,"
        " l.monthly_tokens FROM workspaces w LEFT JOIN workspace_limits l"
        " ON l.workspace_id = w.id WHERE w.name = :n",
        n=workspace,
    )


def put_limits(
    database: Database | Session,
    workspace_id: str,
    values: dict[str, int | None],
    updated_by: str,
) -> WorkspaceLimits:
    """Replace the limits of ``workspace_id`` (every limit; None takes the default).

    Args:
        database: Where to write (a session to write in the caller's transaction).
        workspace_id: The workspace.
        values: Each limit's value by column name (all five).
        updated_by: The principal who set them.
    """
    stored = database.record(
        WorkspaceLimits,
        "INSERT INTO workspace_limits AS l (workspace_id, requests_per_minute,"
        " api_key_requests_per_minute, questions_per_day, tokens_per_question,"
        " monthly_tokens, updated_by) VALUES (CAST(:w AS uuid), :rpm, :krpm, :qpd, :tpq,"
        " :mt, :by) ON CONFLICT (workspace_id) DO UPDATE SET"
        " requests_per_minute = EXCLUDED.requests_per_minute,"
        " api_key_requests_per_minute = EXCLUDED.api_key_requests_per_minute,"
        " questions_per_day = EXCLUDED.questions_per_day,"
        " tokens_per_question = EXCLUDED.tokens_per_question,"
        " monthly_tokens = EXCLUDED.monthly_tokens, updated_by = EXCLUDED.updated_by,"
        f" updated_at = now() RETURNING {_LIMIT_COLUMNS}",
        w=workspace_id,
        rpm=values["requests_per_minute"],
        krpm=values["api_key_requests_per_minute"],
        qpd=values["questions_per_day"],
        tpq=values["tokens_per_question"],
        mt=values["monthly_tokens"],
        by=updated_by,
    )
    assert stored is not None  # an upsert with RETURNING always returns its row
    return stored


def take(
    database: Database,
    limit_name: str,
    subject: str,
    window_start: dt.datetime,
    amount: int,
    limit: int,
) -> Taken | None:
    """Add ``amount`` to a counter if the sum stays within ``limit``; None if it does not.

    One statement, on its own (its implicit transaction): the upsert's row lock
    serializes concurrent takes of one counter and its ``WHERE`` is evaluated on the
    latest row, so exactly ``limit`` units are ever granted in a window, whatever the
    number of instances. Its commit does not wait for the disk (``synchronous_commit``
    off for that transaction only, set inside the statement): a database crash may
    forget the last moment's counts, which a rate limit can afford on every request.
    """
    return database.record(
        Taken,
        f"WITH {ASYNC_COMMIT}"
        " INSERT INTO quota_counters AS c (limit_name, subject, window_start, used)"
        " SELECT :l, :s, :ws, CAST(:n AS bigint) FROM async_commit"
        " WHERE CAST(:n AS bigint) <= :lim"
        " ON CONFLICT (limit_name, subject, window_start) DO UPDATE"
        " SET used = c.used + EXCLUDED.used WHERE c.used + EXCLUDED.used <= :lim"
        " RETURNING c.used",
        l=limit_name,
        s=subject,
        ws=window_start,
        n=amount,
        lim=limit,
    )


def add(
    database: Database | Session,
    limit_name: str,
    subject: str,
    window_start: dt.datetime,
    amount: int,
) -> None:
    """Add ``amount`` to a counter unconditionally (usage known only afterwards).

    Committed without waiting for the disk, as :func:`take`.
    """
    database.run(
        f"WITH {ASYNC_COMMIT}"
        " INSERT INTO quota_counters AS c (limit_name, subject, window_start, used)"
        " SELECT :l, :s, :ws, CAST(:n AS bigint) FROM async_commit"
        " ON CONFLICT (limit_name, subject, window_start)"
        " DO UPDATE SET used = c.used + EXCLUDED.used",
        l=limit_name,
        s=subject,
        ws=window_start,
        n=amount,
    )


def used(
    database: Database | Session, limit_name: str, subject: str, window_start: dt.datetime
) -> int:
    """A counter's value in the window starting at ``window_start`` (0 if never taken)."""
    found = database.record(
        Usage,
        "SELECT used FROM quota_counters WHERE limit_name = :l AND subject = :s"
        " AND window_start = :ws",
        l=limit_name,
        s=subject,
        ws=window_start,
    )
    return found.used if found else 0


@dataclass(frozen=True)
class _Removed:
    removed: int


def delete_ended_windows(
    database: Database | Session,
    *,
    minute_before: dt.datetime,
    day_before: dt.datetime,
    month_before: dt.datetime,
) -> int:
    """Forget counters of windows no check reads any more; how many rows went.

    Args:
        database: Where to delete.
        minute_before: Per-minute windows that started earlier go.
        day_before: Per-day windows that started earlier go.
        month_before: Monthly windows that started earlier go.
    """
    found = database.record(
        _Removed,
        "WITH gone AS (DELETE FROM quota_counters WHERE window_start < CASE limit_name"
        " WHEN 'monthly_tokens' THEN CAST(:month AS timestamptz)"
        " WHEN 'questions_per_day' THEN CAST(:day AS timestamptz)"
        " ELSE CAST(:minute AS timestamptz) END RETURNING 1)"
        " SELECT count(*)::int AS removed FROM gone",
        minute=minute_before,
        day=day_before,
        month=month_before,
    )
    return found.removed if found else 0
