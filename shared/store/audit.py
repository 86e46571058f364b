"""The audit log: the statements that append to it and read it (never change it).

``audit_log`` is append-only (migration 0021: a trigger refuses UPDATE, DELETE and
TRUNCATE, and the functions' role holds only SELECT and INSERT).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.db import Database, Session


@dataclass(frozen=True)
class AuditEntry:
    """What one audit row says, before it is written."""

    workspace_id: str | None
    workspace: str
    actor: str
    credential_kind: str
    credential_id: str
    action: str
    target_kind: str
    target_ids: Sequence[str]
    outcome: str
    status: int | None
    request_id: str
    trace_id: str
    client_address: str
    user_agent: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """One stored audit row."""

    id: int
    at: dt.datetime
    workspace_id: str | None
    workspace: str
    actor: str
    credential_kind: str
    credential_id: str
    action: str
    target_kind: str
    target_ids: list[str]
    outcome: str
    status: int | None
    request_id: str
    trace_id: str
    client_address: str
    user_agent: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "id": str(self.id),
            "at": self.at.isoformat(),
            "workspace": self.workspace,
            "actor": self.actor,
            "credential": {"kind": self.credential_kind, "id": self.credential_id},
            "action": self.action,
            "target": {"kind": self.target_kind, "ids": list(self.target_ids)},
            "outcome": self.outcome,
            "status": self.status,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "client_address": self.client_address,
            "user_agent": self.user_agent,
            "details": self.details,
        }


@dataclass(frozen=True)
class AuditFilter:
    """Which rows a read returns (None: any), newest first, after a keyset cursor."""

    workspace_id: str
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None


@dataclass(frozen=True)
class _Wrote:
    wrote: bool


_COLUMNS = (
    "id, at, workspace_id::text AS workspace_id, workspace, actor, credential_kind,"
    " credential_id, action, target_kind, target_ids, outcome, status, request_id,"
    " trace_id, client_address, user_agent, details"
)


_APPEND = (
    "INSERT INTO audit_log (workspace_id, workspace, actor, credential_kind,"
    " credential_id, action, target_kind, target_ids, outcome, status, request_id,"
    " trace_id, client_address, user_agent, details) SELECT CAST(:wid AS uuid), :ws,"
    " :actor, :ck, :cid, :action, :tk, CAST(:tids AS text[]), :outcome, :status, :rid,"
    " :tid, :addr, :ua, CAST(:details AS jsonb)"
)


def _values(entry: AuditEntry) -> dict[str, object]:
    return {
        "wid": entry.workspace_id,
        "ws": entry.workspace,
        "actor": entry.actor,
        "ck": entry.credential_kind,
        "cid": entry.credential_id,
        "action": entry.action,
        "tk": entry.target_kind,
        "tids": list(entry.target_ids),
        "outcome": entry.outcome,
        "status": entry.status,
        "rid": entry.request_id,
        "tid": entry.trace_id,
        "addr": entry.client_address,
        "ua": entry.user_agent,
        "details": json.dumps(entry.details),
    }


def append_if_wrote(session: Session, entry: AuditEntry) -> bool:
    """Append one row in the session's open transaction if it has changed a row.

    One statement: the condition (the transaction holds an xid) is evaluated before the
    row is inserted, and an INSERT of no rows takes no xid, so a transaction that
    changed nothing stays read-only. Returns whether the row was appended.
    """
    found = session.record(
        _Wrote,
        _APPEND + " WHERE pg_current_xact_id_if_assigned() IS NOT NULL RETURNING true AS wrote",
        **_values(entry),
    )
    return bool(found and found.wrote)


def append(database: Database | Session, entry: AuditEntry) -> None:
    """Append one row (in the session's transaction when given a session)."""
    database.run(_APPEND, **_values(entry))


def read(database: Database | Session, where: AuditFilter, limit: int) -> list[AuditRecord]:
    """A workspace's rows matching ``where``, newest first, at most ``limit``."""
    return database.records(
        AuditRecord,
        f"SELECT {_COLUMNS} FROM audit_log WHERE workspace_id = CAST(:w AS uuid)"
        " AND (CAST(:actor AS text) IS NULL OR actor = :actor)"
        " AND (CAST(:action AS text) IS NULL OR action = :action)"
        " AND (CAST(:target AS text) IS NULL OR target_ids @> ARRAY[CAST(:target AS text)])"
        " AND (CAST(:outcome AS text) IS NULL OR outcome = :outcome)"
        " AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)"
        " AND (CAST(:until AS timestamptz) IS NULL OR at < :until)"
        " AND (CAST(:before AS bigint) IS NULL OR id < :before)"
        " ORDER BY id DESC LIMIT :lim",
        w=where.workspace_id,
        actor=where.actor,
        action=where.action,
        target=where.target,
        outcome=where.outcome,
        since=where.since,
        until=where.until,
        before=where.before_id,
        lim=limit,
    )
