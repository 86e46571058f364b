"""Document versions: loading, claims and leases, conditional status changes.

Every status change is a conditional UPDATE (``WHERE status = ANY(allowed)``): a
redelivered message finds the version already past its step and changes nothing. The
rules deciding which change to make live in :mod:`shared.pipeline.versions`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session
from shared.ids import is_uuid
from shared.periods import ReportingPeriod

# The statuses with a timestamp column of their own (``<status>_at``), set the first
# time the version enters the status; in the order a version goes through them.
STAGE_COLUMNS = (
    "received_at", "parsing_at", "chunking_at", "embedding_at", "indexing_at", "ready_at",
    "failed_at",
)  # fmt: skip
_STAMPED = frozenset(column[: -len("_at")] for column in STAGE_COLUMNS)
# Entering another stage releases the lease and starts the new stage's re-drive budget.
_NEW_STAGE_RESETS = tuple(
    f"{name} = CASE WHEN p.previous = :to_status THEN v.{name} ELSE {reset} END"
    for name, reset in (
        ("lease_holder", "NULL"),
        ("lease_expires_at", "NULL"),
        ("lost_attempts", "0"),
        ("idle_redrives", "0"),
    )
)


@dataclass(frozen=True)
class Version:
    """A document version as the pipeline steps see it."""

    id: str
    document_id: str
    kb_id: str
    number: int
    status: str
    object_bucket: str
    object_name: str
    object_generation: int | None
    size_bytes: int | None
    filename: str
    last_error: str | None


@dataclass(frozen=True)
class VersionSummary:
    """A version's id, status and checksum: what ingest dedupes an object against."""

    id: str
    status: str
    checksum: str | None


@dataclass(frozen=True)
class VersionView:
    """A version as the documents API shows it, with its stage timestamps."""

    id: str
    number: int
    status: str
    checksum: str | None
    size_bytes: int | None
    content_type: str | None
    page_count: int | None
    chunk_count: int | None
    error_code: str | None
    error: str | None
    embedding_model: str | None
    created_at: dt.datetime
    received_at: dt.datetime | None
    parsing_at: dt.datetime | None
    chunking_at: dt.datetime | None
    embedding_at: dt.datetime | None
    indexing_at: dt.datetime | None
    ready_at: dt.datetime | None
    failed_at: dt.datetime | None
    approved_at: dt.datetime | None
    approved_by: str | None


@dataclass(frozen=True)
class StoredObject:
    """Where a version's source object is stored."""

    id: str
    object_bucket: str
    object_name: str


@dataclass(frozen=True)
class StalledVersion:
    """A version the sweeper claimed, with its re-drive counts as they now are.

    ``sweeps`` counts every re-drive of the version; ``lost_attempts`` the attempts of
    its current stage that started and vanished with their lease; ``idle_redrives``
    the re-drives of its current stage after which no attempt started.
    """

    id: str
    document_id: str
    kb_id: str
    status: str
    sweeps: int
    lost_attempts: int
    idle_redrives: int


@dataclass(frozen=True)
class _Id:
    id: str


_VERSION_COLUMNS = (
    "v.id::text AS id, v.document_id::text AS document_id, v.kb_id::text AS kb_id, v.number,"
    " v.status, v.object_bucket, v.object_name, v.object_generation, v.size_bytes, d.filename,"
    " v.last_error"
)
_VIEW_SELECT = (
    "SELECT v.id::text AS id, v.number, v.status, v.checksum, v.size_bytes, v.content_type,"
    " v.page_count, v.chunk_count, v.error_code, v.error, v.embedding_model, v.created_at,"
    + ", ".join(f"v.{column}" for column in STAGE_COLUMNS)
    + ", v.approved_at, v.approved_by FROM document_versions v"
)


def load_version(
    session: Session | Database, version_id: str, *, lock: bool = False
) -> Version | None:
    """Return the version, or None if it (or its document) was deleted.

    Args:
        session: Where to read; with ``lock``, a session inside a transaction.
        version_id: The version's id (anything but a UUID finds nothing).
        lock: Lock the version's row (``FOR UPDATE``) until the transaction ends.
    """
    if not is_uuid(version_id):
        return None
    sql = (
        f"SELECT {_VERSION_COLUMNS} FROM document_versions v"
        " JOIN documents d ON d.id = v.document_id WHERE v.id = CAST(:id AS uuid)"
    )
    if lock:
        sql += " FOR UPDATE OF v"
    return session.record(Version, sql, id=version_id)


def change_status(
    session: Session,
    version_id: str,
    to_status: str,
    allowed_from: tuple[str, ...],
    columns: dict[str, Any],
) -> str | None:
    """Set the version's status to ``to_status`` if it is in one of ``allowed_from``.

    Sets the stage timestamp the first time the stage is entered, ``updated_at``, and
    the extra ``columns`` given (e.g. ``{"page_count": 12}``). Entering another stage
    releases the lease and resets the stage's re-drive counts.

    Args:
        session: A session inside the caller's transaction.
        version_id: The version to change.
        to_status: The new status.
        allowed_from: The statuses the change may start from.
        columns: Further columns of ``document_versions`` to set, by name.

    Returns:
        The status the version had before, or None if it is gone or was not in an
        allowed status (nothing changed).
    """
    assignments = ["status = :to_status", "updated_at = now()", *_NEW_STAGE_RESETS]
    if to_status in _STAMPED:
        assignments.append(f"{to_status}_at = coalesce({to_status}_at, now())")
    for name in columns:
        assignments.append(f"{name} = :col_{name}")
    params = {f"col_{name}": value for name, value in columns.items()}
    # The sub-select locks the row and hands back the status it had, so a redelivered
    # message that re-enters the stage it is already in (parsing -> parsing) updates
    # the row but adds no second event to the progress stream.
    previous = session.scalar(
        f"UPDATE document_versions v SET {', '.join(assignments)}"
        " FROM (SELECT id, status AS previous FROM document_versions"
        "       WHERE id = CAST(:id AS uuid) FOR UPDATE) p"
        " WHERE v.id = p.id AND p.previous = ANY(CAST(:allowed AS text[]))"
        " RETURNING p.previous",
        id=version_id,
        to_status=to_status,
        allowed=list(allowed_from),
        **params,
    )
    return None if previous is None else str(previous)


def claim_stage(
    session: Session,
    version_id: str,
    stage: str,
    from_status: str,
    *,
    holder: str,
    lease_s: int,
) -> str | None:
    """Enter ``stage`` from ``from_status``, or take it over from an attempt that is over.

    An attempt is over when it recorded an error (a retry of a failed attempt) or its
    lease expired (it crashed or hung: a live attempt renews its lease). The claim
    makes ``holder`` the lease's holder for ``lease_s`` seconds, clears the recorded
    error (an error there always belongs to the latest attempt) and, since an attempt
    started, the count of unanswered re-drives.

    Args:
        session: A session inside the caller's transaction.
        version_id: The version to claim.
        stage: The stage to hold (``parsing``, ``chunking``).
        from_status: The status the stage is entered from.
        holder: This attempt's id.
        lease_s: Seconds the lease lasts unless renewed.

    Returns:
        The status the version had before, or None if it is gone, past the stage, or
        held by a live attempt (nothing changed).
    """
    if stage not in _STAMPED:
        raise ValueError(f"not a stage: {stage}")
    previous = session.scalar(
        f"UPDATE document_versions v SET status = :stage, updated_at = now(),"
        f" {stage}_at = coalesce(v.{stage}_at, now()), last_error = NULL,"
        " lease_holder = :holder, lease_expires_at = now() + make_interval(secs => :lease),"
        " idle_redrives = 0,"
        " lost_attempts = CASE WHEN p.previous = :stage THEN v.lost_attempts ELSE 0 END"
        " FROM (SELECT id, status AS previous FROM document_versions"
        "       WHERE id = CAST(:id AS uuid) FOR UPDATE) p"
        " WHERE v.id = p.id AND (p.previous = :from_status OR (p.previous = :stage"
        " AND (v.last_error IS NOT NULL OR v.lease_expires_at IS NULL"
        "      OR v.lease_expires_at < now())))"
        " RETURNING p.previous",
        id=version_id,
        stage=stage,
        from_status=from_status,
        holder=holder,
        lease=lease_s,
    )
    return None if previous is None else str(previous)


def renew_lease(database: Database, version_id: str, holder: str, lease_s: int) -> bool:
    """Extend ``holder``'s lease to ``lease_s`` seconds from now (autocommit).

    Returns:
        False if ``holder`` no longer holds the version (taken over, released, moved on).
    """
    renewed = database.scalar(
        "UPDATE document_versions SET lease_expires_at = now() + make_interval(secs => :lease)"
        " WHERE id = CAST(:id AS uuid) AND lease_holder = :holder RETURNING id",
        id=version_id,
        holder=holder,
        lease=lease_s,
    )
    return renewed is not None


def release_lease(session: Session, version_id: str, holder: str) -> None:
    """``holder`` finished its work: it no longer holds the version.

    The expiry stays, so a duplicate message arriving before it is still dropped; a
    sweep that finds the version stalled later counts no lost attempt.
    """
    session.run(
        "UPDATE document_versions SET lease_holder = NULL"
        " WHERE id = CAST(:id AS uuid) AND lease_holder = :holder",
        id=version_id,
        holder=holder,
    )


def extend_shared_lease(database: Database, version_id: str, lease_s: int) -> None:
    """Keep the sweeper off a stage many attempts work on at once (embedding batches).

    Nobody holds such a lease, so it is only ever extended, never taken over.
    """
    database.run(
        "UPDATE document_versions SET lease_expires_at ="
        " greatest(lease_expires_at, now() + make_interval(secs => :lease))"
        " WHERE id = CAST(:id AS uuid)",
        id=version_id,
        lease=lease_s,
    )


def set_last_error(database: Database, version_id: str, message: str) -> None:
    """Record ``message`` as the version's latest transient error (autocommit)."""
    database.run(
        "UPDATE document_versions SET last_error = :m, updated_at = now()"
        " WHERE id = CAST(:id AS uuid)",
        m=message,
        id=version_id,
    )


def extend_pool_leases(database: Database, model: str, dim: int, lease_s: int) -> int:
    """Keep the sweeper off every version waiting for vectors from ``model``/``dim``.

    Requests filled across versions embed the oldest chunks first, so a version far back
    in a long backlog waits without progress of its own; while requests keep going out,
    the backlog moves, and its versions are not stalled.

    Returns:
        How many versions' leases were extended.
    """
    rows = database.run(
        "UPDATE document_versions v SET lease_expires_at ="
        " greatest(v.lease_expires_at, now() + make_interval(secs => :lease))"
        " FROM knowledge_bases k WHERE k.id = v.kb_id AND v.status = 'embedding'"
        " AND k.embedding_model = :model AND k.embedding_dim = :dim"
        " AND EXISTS (SELECT 1 FROM chunks c WHERE c.version_id = v.id AND c.embedding IS NULL)"
        " RETURNING v.id",
        lease=lease_s,
        model=model,
        dim=dim,
    )
    return len(rows)


def touch(session: Session, version_id: str) -> None:
    """Record progress: bump ``updated_at`` and reset the stage's re-drive counts."""
    session.run(
        "UPDATE document_versions SET updated_at = now(), lost_attempts = 0,"
        " idle_redrives = 0 WHERE id = CAST(:v AS uuid)",
        v=version_id,
    )


def record_parse(
    session: Session,
    version_id: str,
    *,
    content_type: str,
    page_count: int | None,
    source_date: str | None,
    profile: str,
    period: ReportingPeriod | None = None,
) -> None:
    """Store what parsing found: content type, page count, date, profile and period.

    Args:
        session: A session inside the caller's transaction.
        version_id: The parsed version.
        content_type: The detected content type.
        page_count: Pages, for paged formats.
        source_date: The date the document declares (ISO 8601); without one, the
            version's received (or created) time is its date.
        profile: The text the full-text profile of the version is built from.
        period: The reporting period the document states, if any.
    """
    session.run(
        "UPDATE document_versions SET content_type = :t, page_count = :p,"
        " period_end = CAST(:pe AS date), period_months = :pm, fiscal_year_end_month = :fy,"
        " source_date = coalesce(CAST(:date AS timestamptz), received_at, created_at),"
        # Dots, slashes and underscores split too, so "AMAZON.COM" or a file name's
        # parts match the words a question uses ("Amazon").
        " profile = to_tsvector('english', regexp_replace(:profile, '[._/@-]', ' ', 'g'))"
        " WHERE id = CAST(:id AS uuid)",
        t=content_type,
        p=page_count,
        date=source_date,
        profile=profile,
        pe=None if period is None else period.end.isoformat(),
        pm=None if period is None else period.months,
        fy=None if period is None else period.fiscal_year_end_month,
        id=version_id,
    )


def record_approval(session: Session, version_id: str, approved_by: str | None) -> None:
    """Record that the version became active now, approved by ``approved_by``.

    ``approved_by`` is None when the knowledge base requires no approval.
    """
    session.run(
        "UPDATE document_versions SET approved_at = now(), approved_by = :by"
        " WHERE id = CAST(:v AS uuid)",
        by=approved_by,
        v=version_id,
    )


def newest_waiting_version(session: Session, document_id: str) -> str | None:
    """The id of the document's newest version awaiting approval, if any."""
    found = session.scalar(
        "SELECT id::text FROM document_versions WHERE document_id = CAST(:d AS uuid)"
        " AND status = 'awaiting_approval' ORDER BY number DESC LIMIT 1",
        d=document_id,
    )
    return None if found is None else str(found)


def has_newer_version(database: Database, document_id: str, number: int) -> bool:
    """Whether the document has a version numbered above ``number``."""
    return bool(
        database.scalar(
            "SELECT count(*) FROM document_versions WHERE document_id = CAST(:d AS uuid)"
            " AND number > :n",
            d=document_id,
            n=number,
        )
    )


def older_version_ids(session: Session, document_id: str, number: int) -> list[str]:
    """The ids of the document's versions numbered below ``number``."""
    return [
        found.id
        for found in session.records(
            _Id,
            "SELECT id::text AS id FROM document_versions WHERE document_id = CAST(:d AS uuid)"
            " AND number < :n",
            d=document_id,
            n=number,
        )
    ]


def find_by_object(
    session: Session, bucket: str, name: str, generation: int
) -> VersionSummary | None:
    """The version made from this generation of the object, if any."""
    return session.record(
        VersionSummary,
        "SELECT id::text AS id, status, checksum FROM document_versions WHERE object_bucket = :b"
        " AND object_name = :n AND object_generation = :g",
        b=bucket,
        n=name,
        g=generation,
    )


def latest_version(session: Session, document_id: str) -> VersionSummary | None:
    """The document's highest-numbered version, if it has one."""
    return session.record(
        VersionSummary,
        "SELECT id::text AS id, status, checksum FROM document_versions"
        " WHERE document_id = CAST(:d AS uuid) ORDER BY number DESC LIMIT 1",
        d=document_id,
    )


def insert_received_version(
    session: Session,
    *,
    document_id: str,
    kb_id: str,
    checksum: str | None,
    size_bytes: int | None,
    declared_type: str | None,
    bucket: str,
    name: str,
    generation: int | None,
) -> str:
    """Insert the document's next version, ``received`` now; return its id.

    The number is one above the document's highest: the caller holds the document's
    row lock (:func:`shared.store.documents.lock_document`), so two registrations of
    the same document cannot pick the same number.
    """
    return str(
        session.scalar(
            "INSERT INTO document_versions (document_id, kb_id, number, checksum,"
            " size_bytes, declared_type, object_bucket, object_name, object_generation,"
            " status, received_at)"
            " VALUES (CAST(:d AS uuid), CAST(:k AS uuid),"
            " (SELECT coalesce(max(number), 0) + 1 FROM document_versions"
            "  WHERE document_id = CAST(:d AS uuid)),"
            " :c, :size, :t, :b, :n, :g, 'received', now()) RETURNING id::text",
            d=document_id,
            k=kb_id,
            c=checksum,
            size=size_bytes,
            t=declared_type,
            b=bucket,
            n=name,
            g=generation,
        )
    )


def current_object(database: Database, document_id: str) -> StoredObject | None:
    """The object of the document's active version (else its latest), if it has one."""
    return database.record(
        StoredObject,
        "SELECT v.id::text AS id, v.object_bucket, v.object_name FROM documents d"
        " JOIN document_versions v ON v.id = coalesce(d.active_version_id, d.latest_version_id)"
        " WHERE d.id = CAST(:d AS uuid)",
        d=document_id,
    )


@dataclass(frozen=True)
class DocumentFile:
    """A version's source object, with the document's file name and its content type."""

    version_id: str
    object_bucket: str
    object_name: str
    filename: str
    content_type: str | None


def document_file(
    database: Database, document_id: str, *, active_only: bool
) -> DocumentFile | None:
    """The source object of the document's active version, else (unless ``active_only``) its latest.

    A version still ``awaiting_upload`` has no object yet and is never returned.
    """
    pointer = (
        "d.active_version_id"
        if active_only
        else "coalesce(d.active_version_id, d.latest_version_id)"
    )
    return database.record(
        DocumentFile,
        "SELECT v.id::text AS version_id, v.object_bucket, v.object_name, d.filename,"
        " coalesce(v.content_type, v.declared_type) AS content_type FROM documents d"
        f" JOIN document_versions v ON v.id = {pointer}"
        " WHERE d.id = CAST(:d AS uuid) AND v.status <> 'awaiting_upload'",
        d=document_id,
    )


def version_objects(database: Database, document_id: str) -> list[StoredObject]:
    """The source object of every version of the document."""
    return database.records(
        StoredObject,
        "SELECT id::text AS id, object_bucket, object_name FROM document_versions"
        " WHERE document_id = CAST(:d AS uuid)",
        d=document_id,
    )


def list_version_views(database: Database, document_id: str) -> list[VersionView]:
    """Every version of the document as the API shows it, newest first."""
    return database.records(
        VersionView,
        _VIEW_SELECT + " WHERE v.document_id = CAST(:d AS uuid) ORDER BY v.number DESC",
        d=document_id,
    )


def claim_stalled(
    session: Session, stages: tuple[str, ...], stall_after_s: int, limit: int
) -> list[StalledVersion]:
    """Claim up to ``limit`` stalled versions in ``stages`` for a re-drive.

    Stalled: no live lease and no progress (``updated_at``) for ``stall_after_s``
    seconds. Claiming counts the re-drive (a lost attempt if the stage's lease still
    had a holder, else an idle re-drive), clears the dead holder and bumps
    ``updated_at``, so a concurrent or the next sweep leaves the version alone until
    it stalls again; rows another sweep holds are skipped.
    """
    return session.records(
        StalledVersion,
        "UPDATE document_versions v SET sweeps = v.sweeps + 1, updated_at = now(),"
        " lost_attempts = v.lost_attempts + CASE WHEN v.lease_holder IS NULL THEN 0 ELSE 1 END,"
        " idle_redrives = v.idle_redrives + CASE WHEN v.lease_holder IS NULL THEN 1 ELSE 0 END,"
        " lease_holder = NULL"
        " FROM (SELECT id FROM document_versions"
        "       WHERE status = ANY(CAST(:stages AS text[]))"
        "       AND updated_at < now() - make_interval(secs => :after)"
        "       AND (lease_expires_at IS NULL OR lease_expires_at < now())"
        "       ORDER BY updated_at LIMIT :limit FOR UPDATE SKIP LOCKED) stalled"
        " WHERE v.id = stalled.id"
        " RETURNING v.id::text AS id, v.document_id::text AS document_id,"
        " v.kb_id::text AS kb_id, v.status, v.sweeps, v.lost_attempts, v.idle_redrives",
        stages=list(stages),
        after=stall_after_s,
        limit=limit,
    )


def delete_document_versions(session: Session, document_id: str) -> None:
    """Delete every version of the document (in the caller's transaction)."""
    session.run("DELETE FROM document_versions WHERE document_id = CAST(:d AS uuid)", d=document_id)
