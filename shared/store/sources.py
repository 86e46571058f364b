"""Sources, their sync runs and their items: ``sources``, ``source_runs``, ``source_items``.

The rules live in :mod:`shared.pipeline.sync` (a run's life) and
:mod:`shared.api.sources` (the API); this module only states them in SQL. A run's
progress is derived from its items' rows (``state``, ``outcome``), never from counters,
so a redelivered task changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session
from shared.ids import is_uuid

#: What a finished item visit came to (``source_items.outcome``).
OUTCOMES = ("added", "updated", "unchanged", "deleted", "skipped", "failed")


def _object(text: str | None) -> dict[str, Any] | None:
    """A JSON object column read as text (None when null or not an object)."""
    value = None if text is None else json.loads(text)
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Source:
    """A source as stored."""

    id: str
    workspace_id: str
    kb_id: str
    type: str
    config_json: str
    schedule_minutes: int | None
    paused: bool
    current_run_id: str | None
    last_run_id: str | None
    next_run_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def config(self) -> dict[str, Any]:
        """The type's configuration, as validated when it was stored."""
        return _object(self.config_json) or {}


@dataclass(frozen=True)
class SourceRun:
    """One sync run of a source."""

    id: str
    source_id: str
    trigger: str
    due_at: dt.datetime | None
    status: str
    roots_listed: bool
    truncated: bool
    item_count: int
    started_at: dt.datetime
    ended_at: dt.datetime | None
    progress_at: dt.datetime
    sweeps: int
    counts_json: str | None
    last_error: str | None

    @property
    def counts(self) -> dict[str, int] | None:
        """The outcome counts written when the run ended (None while it runs)."""
        return _object(self.counts_json)


@dataclass(frozen=True)
class SourceItem:
    """An item of a source as its last visit left it."""

    source_id: str
    key: str
    depth: int
    hints_json: str
    is_root: bool
    last_run_id: str | None
    state: str
    outcome: str | None
    revision_json: str | None
    origin_url: str | None
    document_id: str | None
    version_id: str | None
    error: str | None
    error_code: str | None

    @property
    def hints(self) -> dict[str, Any]:
        """The connector's hints recorded when the item was found."""
        return _object(self.hints_json) or {}

    @property
    def revision(self) -> dict[str, Any] | None:
        """The revision stored by the last fetch (etag, last_modified, version)."""
        return _object(self.revision_json)


@dataclass(frozen=True)
class NewItem:
    """An item a run is about to claim (a root or a child found by a visit)."""

    key: str
    depth: int
    hints: dict[str, Any]
    is_root: bool = False


@dataclass(frozen=True)
class ItemResult:
    """What a visit wrote on its item."""

    outcome: str
    revision: dict[str, Any] | None = None
    origin_url: str | None = None
    document_id: str | None = None
    version_id: str | None = None
    error: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class DueSource:
    """A scheduled source whose next run is due."""

    id: str
    next_run_at: dt.datetime


@dataclass(frozen=True)
class OutcomeCount:
    """How many items of a run came to one outcome."""

    outcome: str
    count: int


@dataclass(frozen=True)
class PendingItem:
    """An item still waiting for its task in a run."""

    key: str


_SOURCE_FIELDS = (
    "id::text AS id, workspace_id::text AS workspace_id, kb_id::text AS kb_id, type,"
    " config::text AS config_json, schedule_minutes, paused,"
    " current_run_id::text AS current_run_id, last_run_id::text AS last_run_id,"
    " next_run_at, created_by, created_at, updated_at"
)
_RUN_FIELDS = (
    "id::text AS id, source_id::text AS source_id, trigger, due_at, status, roots_listed,"
    " truncated, item_count, started_at, ended_at, progress_at, sweeps,"
    " counts::text AS counts_json, last_error"
)
_ITEM_FIELDS = (
    "source_id::text AS source_id, key, depth, hints::text AS hints_json, is_root,"
    " last_run_id::text AS last_run_id, state, outcome, revision::text AS revision_json,"
    " origin_url, document_id::text AS document_id, version_id::text AS version_id,"
    " error, error_code"
)


# Sources.


def insert_source(
    session: Session,
    *,
    workspace_id: str,
    kb_id: str,
    source_type: str,
    config: dict[str, Any],
    schedule_minutes: int | None,
    paused: bool,
    created_by: str,
) -> Source:
    """Store a new source and return it; a scheduled one is due one interval from now."""
    source = session.record(
        Source,
        "INSERT INTO sources (workspace_id, kb_id, type, config, schedule_minutes, paused,"
        " next_run_at, created_by)"
        " VALUES (CAST(:w AS uuid), CAST(:k AS uuid), :t, CAST(:c AS jsonb),"
        " CAST(:m AS integer), :p, now() + make_interval(mins => CAST(:m AS integer)), :by)"
        " RETURNING " + _SOURCE_FIELDS,
        w=workspace_id,
        k=kb_id,
        t=source_type,
        c=json.dumps(config),
        m=schedule_minutes,
        p=paused,
        by=created_by,
    )
    if source is None:  # INSERT ... RETURNING always returns the row
        raise RuntimeError("the inserted source was not returned")
    return source


def get_source(database: Database | Session, source_id: str) -> Source | None:
    """The source, or None (also for an id that is no UUID)."""
    if not is_uuid(source_id):
        return None
    return database.record(
        Source,
        f"SELECT {_SOURCE_FIELDS} FROM sources WHERE id = CAST(:id AS uuid)",
        id=source_id,
    )


def lock_source(session: Session, source_id: str) -> Source | None:
    """Lock the source's row for the transaction and return it, or None."""
    return session.record(
        Source,
        f"SELECT {_SOURCE_FIELDS} FROM sources WHERE id = CAST(:id AS uuid) FOR UPDATE",
        id=source_id,
    )


def list_sources(database: Database, kb_id: str) -> list[Source]:
    """The knowledge base's sources, oldest first."""
    return database.records(
        Source,
        f"SELECT {_SOURCE_FIELDS} FROM sources WHERE kb_id = CAST(:k AS uuid)"
        " ORDER BY created_at, id",
        k=kb_id,
    )


def update_source(
    session: Session,
    source_id: str,
    *,
    config: dict[str, Any] | None,
    schedule_minutes: int | None,
    set_schedule: bool,
    paused: bool | None,
) -> Source | None:
    """Change what is given.

    A new schedule makes the next run due one interval from now, as does unpausing a
    scheduled source that has no next run.
    """
    return session.record(
        Source,
        "UPDATE sources SET config = coalesce(CAST(:c AS jsonb), config),"
        " schedule_minutes = CASE WHEN :ss THEN CAST(:m AS integer) ELSE schedule_minutes END,"
        " next_run_at = CASE WHEN :ss THEN"
        "   now() + make_interval(mins => CAST(:m AS integer))"
        "   WHEN NOT coalesce(CAST(:p AS boolean), paused) AND next_run_at IS NULL"
        "   THEN now() + make_interval(mins => schedule_minutes) ELSE next_run_at END,"
        " paused = coalesce(CAST(:p AS boolean), paused), updated_at = now()"
        " WHERE id = CAST(:id AS uuid) RETURNING " + _SOURCE_FIELDS,
        c=None if config is None else json.dumps(config),
        ss=set_schedule,
        m=schedule_minutes,
        p=paused,
        id=source_id,
    )


def delete_source_row(session: Session, source_id: str) -> None:
    """Delete the source with its runs and items (its documents went first)."""
    session.run("DELETE FROM sources WHERE id = CAST(:id AS uuid)", id=source_id)


def source_document_ids(database: Database, source_id: str) -> list[str]:
    """The documents that came from the source (its items' and those naming it)."""
    return [
        str(value)
        for value in database.scalars(
            "SELECT id::text FROM documents WHERE source_id = CAST(:s AS uuid)"
            " UNION SELECT document_id::text FROM source_items"
            " WHERE source_id = CAST(:s AS uuid) AND document_id IS NOT NULL",
            s=source_id,
        )
    ]


def due_sources(database: Database, limit: int) -> list[DueSource]:
    """Unpaused scheduled sources whose next run is due and that run nothing now."""
    return database.records(
        DueSource,
        "SELECT id::text AS id, next_run_at FROM sources"
        " WHERE NOT paused AND next_run_at IS NOT NULL AND next_run_at <= now()"
        " AND current_run_id IS NULL ORDER BY next_run_at LIMIT :lim",
        lim=limit,
    )


def ensure_source_document(
    session: Session,
    *,
    source_id: str,
    source_key: str,
    filename: str,
    created_by: str,
    origin_url: str,
    revision: dict[str, Any],
) -> str | None:
    """The id of the source's document at ``source_key``, created if new, with its origin.

    The source's row is share-locked first: while it exists no delete of it can finish,
    and once it is gone no document of it is created (None).
    """
    kb_id = session.scalar(
        "SELECT kb_id::text FROM sources WHERE id = CAST(:s AS uuid) FOR SHARE", s=source_id
    )
    if kb_id is None:
        return None
    session.run(
        "INSERT INTO documents (kb_id, source_key, filename, created_by, source_id)"
        " VALUES (CAST(:k AS uuid), :key, :f, :by, CAST(:s AS uuid))"
        " ON CONFLICT (kb_id, source_key) DO NOTHING",
        k=kb_id,
        key=source_key,
        f=filename,
        by=created_by,
        s=source_id,
    )
    document_id = session.scalar(
        "UPDATE documents SET source_id = CAST(:s AS uuid), origin_url = :u,"
        " origin_revision = CAST(:r AS jsonb)"
        " WHERE kb_id = CAST(:k AS uuid) AND source_key = :key RETURNING id::text",
        s=source_id,
        u=origin_url,
        r=json.dumps(revision),
        k=kb_id,
        key=source_key,
    )
    return None if document_id is None else str(document_id)


def lock_source_for_delete(session: Session, source_id: str) -> bool:
    """Lock the source's row; True when no document of it is left (it may go now)."""
    found = session.scalar(
        "SELECT 1 FROM sources WHERE id = CAST(:s AS uuid) FOR UPDATE", s=source_id
    )
    if found is None:
        return True
    left = session.scalar(
        "SELECT 1 FROM documents WHERE source_id = CAST(:s AS uuid) LIMIT 1", s=source_id
    )
    return left is None


# Runs.


def start_run(
    session: Session, source: Source, trigger: str, due_at: dt.datetime | None
) -> SourceRun | None:
    """Insert a run and make it the source's current one (the source's row is locked).

    The next scheduled run becomes due one interval from now.

    Returns:
        The run, or None when a run for that due time exists already.
    """
    run = session.record(
        SourceRun,
        "INSERT INTO source_runs (source_id, trigger, due_at)"
        " VALUES (CAST(:s AS uuid), :t, :due) ON CONFLICT (source_id, due_at) DO NOTHING"
        " RETURNING " + _RUN_FIELDS,
        s=source.id,
        t=trigger,
        due=due_at,
    )
    if run is None:
        return None
    session.run(
        "UPDATE sources SET current_run_id = CAST(:r AS uuid),"
        " next_run_at = CASE WHEN schedule_minutes IS NULL THEN NULL"
        "   ELSE now() + make_interval(mins => schedule_minutes) END"
        " WHERE id = CAST(:s AS uuid)",
        r=run.id,
        s=source.id,
    )
    return run


def get_run(database: Database | Session, run_id: str) -> SourceRun | None:
    """The run, or None."""
    if not is_uuid(run_id):
        return None
    return database.record(
        SourceRun, f"SELECT {_RUN_FIELDS} FROM source_runs WHERE id = CAST(:r AS uuid)", r=run_id
    )


def lock_run(session: Session, run_id: str) -> SourceRun | None:
    """Lock the run's row for the transaction and return it, or None."""
    return session.record(
        SourceRun,
        f"SELECT {_RUN_FIELDS} FROM source_runs WHERE id = CAST(:r AS uuid) FOR UPDATE",
        r=run_id,
    )


def list_runs(database: Database, source_id: str, limit: int) -> list[SourceRun]:
    """The source's latest runs, newest first."""
    return database.records(
        SourceRun,
        f"SELECT {_RUN_FIELDS} FROM source_runs WHERE source_id = CAST(:s AS uuid)"
        " ORDER BY started_at DESC, id LIMIT :lim",
        s=source_id,
        lim=limit,
    )


def mark_roots_listed(session: Session, run_id: str) -> bool:
    """Record that the run's roots are claimed; False if that happened before."""
    changed = session.scalar(
        "UPDATE source_runs SET roots_listed = true, progress_at = now()"
        " WHERE id = CAST(:r AS uuid) AND NOT roots_listed RETURNING id",
        r=run_id,
    )
    return changed is not None


def claim_items(
    session: Session, run: SourceRun, items: Sequence[NewItem], cap: int
) -> tuple[list[str], bool]:
    """Claim ``items`` for the run, in order, up to ``cap`` items per run.

    The run's row must be locked (:func:`lock_run`), so concurrent visits count the cap
    together. An item the run already has is not claimed again: exactly one task per key
    per run.

    Returns:
        The keys claimed now, and whether an item was left out by the cap.
    """
    unique = list({item.key: item for item in items}.values())
    if not unique:
        return [], False
    seen = set(
        session.scalars(
            "SELECT key FROM source_items WHERE source_id = CAST(:s AS uuid)"
            " AND last_run_id = CAST(:r AS uuid) AND key = ANY(CAST(:keys AS text[]))",
            s=run.source_id,
            r=run.id,
            keys=[item.key for item in unique],
        )
    )
    fresh = [item for item in unique if item.key not in seen]
    room = max(0, cap - run.item_count)
    chosen, truncated = fresh[:room], len(fresh) > room
    if chosen:
        session.run(
            "INSERT INTO source_items (source_id, key, depth, hints, is_root, last_run_id, state)"
            " SELECT CAST(:s AS uuid), t.key, t.depth, CAST(t.hints AS jsonb), t.root,"
            "   CAST(:r AS uuid), 'pending'"
            " FROM unnest(CAST(:keys AS text[]), CAST(:depths AS integer[]),"
            "   CAST(:hints AS text[]), CAST(:roots AS boolean[])) AS t(key, depth, hints, root)"
            " ON CONFLICT (source_id, key) DO UPDATE SET last_run_id = excluded.last_run_id,"
            "   state = 'pending', depth = excluded.depth, hints = excluded.hints,"
            "   is_root = excluded.is_root, updated_at = now()",
            s=run.source_id,
            r=run.id,
            keys=[item.key for item in chosen],
            depths=[item.depth for item in chosen],
            hints=[json.dumps(item.hints) for item in chosen],
            roots=[item.is_root for item in chosen],
        )
    session.run(
        "UPDATE source_runs SET item_count = item_count + :n, truncated = truncated OR :t,"
        " progress_at = now() WHERE id = CAST(:r AS uuid)",
        n=len(chosen),
        t=truncated,
        r=run.id,
    )
    return [item.key for item in chosen], truncated


def get_item(database: Database | Session, source_id: str, key: str) -> SourceItem | None:
    """The item, or None."""
    return database.record(
        SourceItem,
        f"SELECT {_ITEM_FIELDS} FROM source_items WHERE source_id = CAST(:s AS uuid) AND key = :k",
        s=source_id,
        k=key,
    )


def finish_item(
    session: Session, source_id: str, key: str, run_id: str, result: ItemResult
) -> bool:
    """Record a visit's result, once: only while the item is pending in ``run_id``."""
    done = session.scalar(
        "UPDATE source_items SET state = 'done', outcome = :o,"
        " revision = coalesce(CAST(:rev AS jsonb), revision),"
        " origin_url = coalesce(:u, origin_url),"
        " document_id = CASE WHEN :o = 'deleted' THEN NULL"
        "   ELSE coalesce(CAST(:d AS uuid), document_id) END,"
        " version_id = CASE WHEN :o = 'deleted' THEN NULL"
        "   ELSE coalesce(CAST(:v AS uuid), version_id) END,"
        " error = :e, error_code = :ec, updated_at = now()"
        " WHERE source_id = CAST(:s AS uuid) AND key = :k"
        " AND last_run_id = CAST(:r AS uuid) AND state = 'pending' RETURNING key",
        o=result.outcome,
        rev=None if result.revision is None else json.dumps(result.revision),
        u=result.origin_url,
        d=result.document_id,
        v=result.version_id,
        e=result.error,
        ec=result.error_code,
        s=source_id,
        k=key,
        r=run_id,
    )
    if done is not None:
        session.run(
            "UPDATE source_runs SET progress_at = now() WHERE id = CAST(:r AS uuid)", r=run_id
        )
    return done is not None


def pending_items(database: Database, run_id: str) -> list[PendingItem]:
    """The run's items whose task has not finished."""
    return database.records(
        PendingItem,
        "SELECT key FROM source_items WHERE last_run_id = CAST(:r AS uuid)"
        " AND state = 'pending' ORDER BY key",
        r=run_id,
    )


def begin_finishing(session: Session, run_id: str) -> bool:
    """Move a running run with its roots listed and no pending item to ``finishing``.

    A conditional transition: exactly one caller gets True.
    """
    changed = session.scalar(
        "UPDATE source_runs SET status = 'finishing', progress_at = now()"
        " WHERE id = CAST(:r AS uuid) AND status = 'running' AND roots_listed"
        " AND NOT EXISTS (SELECT 1 FROM source_items"
        "   WHERE last_run_id = CAST(:r AS uuid) AND state = 'pending')"
        " RETURNING id",
        r=run_id,
    )
    return changed is not None


def fail_pending(session: Session, run_id: str, error: str, code: str) -> int:
    """Fail the run's pending items (their tasks were lost too often); how many."""
    return len(
        session.run(
            "UPDATE source_items SET state = 'done', outcome = 'failed', error = :e,"
            " error_code = :c, updated_at = now()"
            " WHERE last_run_id = CAST(:r AS uuid) AND state = 'pending' RETURNING key",
            e=error,
            c=code,
            r=run_id,
        )
    )


def unseen_items(database: Database, source_id: str, run_id: str) -> list[SourceItem]:
    """Items of the source with a document that the run did not reach."""
    return database.records(
        SourceItem,
        f"SELECT {_ITEM_FIELDS} FROM source_items WHERE source_id = CAST(:s AS uuid)"
        " AND last_run_id IS DISTINCT FROM CAST(:r AS uuid) AND document_id IS NOT NULL"
        " ORDER BY key",
        s=source_id,
        r=run_id,
    )


def mark_unseen_deleted(session: Session, source_id: str, key: str, run_id: str) -> None:
    """Record that the run deleted an unseen item's document."""
    session.run(
        "UPDATE source_items SET last_run_id = CAST(:r AS uuid), state = 'done',"
        " outcome = 'deleted', document_id = NULL, version_id = NULL, error = NULL,"
        " error_code = NULL, updated_at = now()"
        " WHERE source_id = CAST(:s AS uuid) AND key = :k",
        r=run_id,
        s=source_id,
        k=key,
    )


def forget_unseen(session: Session, source_id: str, run_id: str) -> None:
    """Drop items the run did not reach that hold no document (nothing left to track)."""
    session.run(
        "DELETE FROM source_items WHERE source_id = CAST(:s AS uuid)"
        " AND last_run_id IS DISTINCT FROM CAST(:r AS uuid) AND document_id IS NULL",
        s=source_id,
        r=run_id,
    )


def outcome_counts(database: Database | Session, run_id: str) -> dict[str, int]:
    """How many of the run's finished items came to each outcome (every outcome named)."""
    rows = database.records(
        OutcomeCount,
        "SELECT outcome, count(*)::integer AS count FROM source_items"
        " WHERE last_run_id = CAST(:r AS uuid) AND state = 'done' GROUP BY outcome",
        r=run_id,
    )
    counts = dict.fromkeys(OUTCOMES, 0)
    counts.update({row.outcome: row.count for row in rows if row.outcome})
    return counts


def last_error(database: Database | Session, run_id: str) -> str | None:
    """The error of one failed item of the run (the latest), as ``key: error``."""
    value = database.scalar(
        "SELECT key || ': ' || coalesce(error, 'failed') FROM source_items"
        " WHERE last_run_id = CAST(:r AS uuid) AND outcome = 'failed'"
        " ORDER BY updated_at DESC, key LIMIT 1",
        r=run_id,
    )
    return None if value is None else str(value)


def root_failed(database: Database | Session, run_id: str) -> bool:
    """Whether a root of the run failed (its children were never listed)."""
    found = database.scalar(
        "SELECT 1 FROM source_items WHERE last_run_id = CAST(:r AS uuid) AND is_root"
        " AND outcome = 'failed' LIMIT 1",
        r=run_id,
    )
    return found is not None


def complete_run(
    session: Session, run: SourceRun, status: str, counts: dict[str, int], error: str | None
) -> bool:
    """End a finishing run and set its source idle; False if it ended before."""
    ended = session.scalar(
        "UPDATE source_runs SET status = :st, ended_at = now(), progress_at = now(),"
        " counts = CAST(:c AS jsonb), last_error = :e"
        " WHERE id = CAST(:r AS uuid) AND status = 'finishing' RETURNING id",
        st=status,
        c=json.dumps(counts),
        e=error,
        r=run.id,
    )
    if ended is None:
        return False
    session.run(
        "UPDATE sources SET current_run_id = NULL, last_run_id = CAST(:r AS uuid),"
        " updated_at = now() WHERE id = CAST(:s AS uuid) AND current_run_id = CAST(:r AS uuid)",
        r=run.id,
        s=run.source_id,
    )
    return True


def fail_run(session: Session, run: SourceRun, error: str) -> bool:
    """End a run that could not start (its roots could not be listed)."""
    ended = session.scalar(
        "UPDATE source_runs SET status = 'failed', ended_at = now(), progress_at = now(),"
        " counts = CAST(:c AS jsonb), last_error = :e"
        " WHERE id = CAST(:r AS uuid) AND status = 'running' RETURNING id",
        c=json.dumps(dict.fromkeys(OUTCOMES, 0)),
        e=error,
        r=run.id,
    )
    if ended is None:
        return False
    session.run(
        "UPDATE sources SET current_run_id = NULL, last_run_id = CAST(:r AS uuid),"
        " updated_at = now() WHERE id = CAST(:s AS uuid) AND current_run_id = CAST(:r AS uuid)",
        r=run.id,
        s=run.source_id,
    )
    return True


def claim_stalled_runs(session: Session, stall_after_s: int, limit: int) -> list[SourceRun]:
    """Runs with no progress for ``stall_after_s``: count a sweep and bump their progress.

    Bumping ``progress_at`` leaves them to a later sweep until they stall again.
    """
    return session.records(
        SourceRun,
        "UPDATE source_runs SET sweeps = sweeps + 1, progress_at = now()"
        " WHERE id IN (SELECT id FROM source_runs WHERE status IN ('running', 'finishing')"
        "   AND progress_at < now() - make_interval(secs => :s) ORDER BY progress_at"
        "   LIMIT :lim FOR UPDATE SKIP LOCKED)"
        " RETURNING " + _RUN_FIELDS,
        s=stall_after_s,
        lim=limit,
    )
