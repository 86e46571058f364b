"""Ingest rejections: objects the ingest function refused, and why (``ingest_rejections``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session


@dataclass(frozen=True)
class NewRejection:
    """What is recorded about a refused object."""

    bucket: str
    object_name: str
    generation: int | None
    reason: str
    message: str
    workspace: str | None = None
    knowledge_base: str | None = None


@dataclass(frozen=True)
class IngestRejection:
    """A recorded refusal of one object generation."""

    id: str
    bucket: str
    object_name: str
    generation: int | None
    reason: str
    message: str
    workspace: str | None
    knowledge_base: str | None
    workspace_id: str | None
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "id": self.id,
            "bucket": self.bucket,
            "object": self.object_name,
            "generation": None if self.generation is None else str(self.generation),
            "reason": self.reason,
            "message": self.message,
            "workspace": self.workspace,
            "knowledge_base": self.knowledge_base,
            "created_at": self.created_at.isoformat(),
        }


_COLUMNS = (
    "id::text AS id, bucket, object_name, generation, reason, message, workspace,"
    " knowledge_base, workspace_id::text AS workspace_id, created_at"
)


def record_rejection(database: Database | Session, rejection: NewRejection) -> bool:
    """Record a refusal once per object generation.

    The row belongs to the workspace the object named only if that workspace exists now.

    Returns:
        True if recorded now, False if this generation was recorded before.
    """
    inserted = database.scalar(
        "INSERT INTO ingest_rejections (bucket, object_name, generation, reason, message,"
        " workspace, knowledge_base, workspace_id)"
        " VALUES (:b, :n, CAST(:g AS bigint), :r, :m, CAST(:w AS text), CAST(:k AS text),"
        " (SELECT id FROM workspaces WHERE name = CAST(:w AS text)))"
        " ON CONFLICT ON CONSTRAINT ingest_rejections_object DO NOTHING RETURNING 1",
        b=rejection.bucket,
        n=rejection.object_name,
        g=rejection.generation,
        r=rejection.reason,
        m=rejection.message,
        w=rejection.workspace,
        k=rejection.knowledge_base,
    )
    return inserted is not None


def list_rejections(
    database: Database | Session,
    *,
    workspace_id: str | None = None,
    named: str | None = None,
    limit: int = 100,
) -> list[IngestRejection]:
    """The newest rejections, all of them unless filtered.

    Args:
        database: The database.
        workspace_id: Only those belonging to this (existing) workspace.
        named: Only those whose object named this workspace, existing or not.
        limit: At most this many.
    """
    return database.records(
        IngestRejection,
        f"SELECT {_COLUMNS} FROM ingest_rejections"
        " WHERE (CAST(:w AS uuid) IS NULL OR workspace_id = CAST(:w AS uuid))"
        " AND (CAST(:named AS text) IS NULL OR workspace = CAST(:named AS text))"
        " ORDER BY created_at DESC, id LIMIT :l",
        w=workspace_id,
        named=named,
        l=limit,
    )
