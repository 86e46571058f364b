"""API keys: the statements behind creating, finding, listing and revoking them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.auth import Role
from shared.db import Database, Session


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: its public id, where it acts, and the hash of its secret."""

    id: str
    workspace_id: str
    workspace: str
    name: str
    role: Role
    secret_sha256: bytes
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        """The API representation: everything but the secret's hash."""
        return {
            "id": self.id,
            "workspace": self.workspace,
            "name": self.name,
            "role": self.role,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


_COLUMNS = (
    "a.id, a.workspace_id::text AS workspace_id, w.name AS workspace, a.name, a.role,"
    " a.secret_sha256, a.created_by, a.created_at, a.expires_at, a.revoked_at, a.last_used_at"
    " FROM api_keys a JOIN workspaces w ON w.id = a.workspace_id"
)


def insert_key(
    session: Session,
    *,
    key_id: str,
    workspace_id: str,
    name: str,
    role: str,
    secret_sha256: bytes,
    created_by: str,
    expires_at: dt.datetime | None,
) -> None:
    """Store a new key (its secret only as a hash)."""
    session.run(
        "INSERT INTO api_keys (id, workspace_id, name, role, secret_sha256, created_by,"
        " expires_at) VALUES (:id, CAST(:w AS uuid), :n, :r, :h, :by, :exp)",
        id=key_id,
        w=workspace_id,
        n=name,
        r=role,
        h=secret_sha256,
        by=created_by,
        exp=expires_at,
    )


def get_key(database: Database | Session, key_id: str) -> ApiKey | None:
    """The key with public id ``key_id``, revoked or not, or None."""
    return database.record(ApiKey, f"SELECT {_COLUMNS} WHERE a.id = :id", id=key_id)


def list_keys(database: Database | Session, workspace_id: str) -> list[ApiKey]:
    """The workspace's keys, newest first."""
    return database.records(
        ApiKey,
        f"SELECT {_COLUMNS} WHERE a.workspace_id = CAST(:w AS uuid)"
        " ORDER BY a.created_at DESC, a.id",
        w=workspace_id,
    )


def revoke_key(session: Session, workspace_id: str, key_id: str) -> bool:
    """Revoke a key of the workspace; False if it has no such key (revoked keys stay)."""
    return bool(
        session.run(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
            " WHERE id = :id AND workspace_id = CAST(:w AS uuid) RETURNING 1",
            id=key_id,
            w=workspace_id,
        )
    )


def touch_key(database: Database, key_id: str) -> None:
    """Record a use of the key, at most once a minute (a busy key is not a write per call)."""
    database.run(
        "UPDATE api_keys SET last_used_at = now() WHERE id = :id"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        id=key_id,
    )
