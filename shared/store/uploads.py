"""Upload intents: the signed upload URLs handed out, until their object arrives or expires.

Owns ``upload_intents``. A row is written when the upload function signs a URL; the
object's arrival deletes it (in the transaction that registers the version); the
sweeper marks a row whose object never came as expired, and the row stays for a while
as a tombstone so that an object still arriving for it is refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.db import Database, Session


@dataclass(frozen=True)
class UploadIntent:
    """A signed upload whose URL expired (with the grace period) without its object."""

    object_name: str
    document_id: str
    kb_id: str
    expires_at: dt.datetime


def record_intent(
    database: Database,
    *,
    object_name: str,
    document_id: str,
    kb_id: str,
    created_by: str,
    ttl_s: int,
) -> None:
    """Remember a signed upload URL for ``object_name``, valid for ``ttl_s`` seconds."""
    database.run(
        "INSERT INTO upload_intents (object_name, document_id, kb_id, created_by, expires_at)"
        " VALUES (:n, CAST(:d AS uuid), CAST(:k AS uuid), :p,"
        " now() + make_interval(secs => :ttl)) ON CONFLICT (object_name) DO NOTHING",
        n=object_name,
        d=document_id,
        k=kb_id,
        p=created_by,
        ttl=ttl_s,
    )


def settle_arrival(session: Session, object_name: str) -> bool:
    """Record that ``object_name`` arrived; True if its upload had expired (refuse it).

    Run under the document's row lock, as the sweeper's expiry is, so the two never
    interleave: the object is either in time (its intent goes) or refused.
    """
    session.run(
        "DELETE FROM upload_intents WHERE object_name = :n AND expired_at IS NULL",
        n=object_name,
    )
    expired = session.scalar(
        "SELECT 1 FROM upload_intents WHERE object_name = :n AND expired_at IS NOT NULL",
        n=object_name,
    )
    return expired is not None


def overdue_intents(database: Database, grace_s: int, limit: int) -> list[UploadIntent]:
    """Pending uploads whose URL expired more than ``grace_s`` seconds ago, oldest first."""
    return database.records(
        UploadIntent,
        "SELECT object_name, document_id::text AS document_id, kb_id::text AS kb_id,"
        " expires_at FROM upload_intents WHERE expired_at IS NULL"
        " AND expires_at < now() - make_interval(secs => :grace)"
        " ORDER BY expires_at LIMIT :lim",
        grace=grace_s,
        lim=limit,
    )


def mark_expired(session: Session, object_name: str) -> bool:
    """Expire a pending upload; False if it was no longer pending (arrived, or expired)."""
    changed = session.scalar(
        "UPDATE upload_intents SET expired_at = now()"
        " WHERE object_name = :n AND expired_at IS NULL RETURNING 1",
        n=object_name,
    )
    return changed is not None


_ABANDONED = (
    " EXISTS (SELECT 1 FROM upload_intents i WHERE i.document_id = d.id"
    " AND i.expired_at IS NOT NULL)"
    " AND NOT EXISTS (SELECT 1 FROM upload_intents i WHERE i.document_id = d.id"
    " AND i.expired_at IS NULL)"
    " AND NOT EXISTS (SELECT 1 FROM document_versions v WHERE v.document_id = d.id)"
)


def abandoned_documents(database: Database, limit: int) -> list[str]:
    """Documents that only ever waited for uploads that expired: no version, none pending."""
    return [
        str(value)
        for value in database.scalars(
            f"SELECT d.id::text FROM documents d WHERE{_ABANDONED} ORDER BY d.id LIMIT :lim",
            lim=limit,
        )
    ]


def is_abandoned(session: Session, document_id: str) -> bool:
    """Whether the document is abandoned (see :func:`abandoned_documents`); lock it first."""
    found = session.scalar(
        f"SELECT 1 FROM documents d WHERE d.id = CAST(:d AS uuid) AND{_ABANDONED}",
        d=document_id,
    )
    return found is not None


def purge_tombstones(database: Database, older_than_s: int) -> int:
    """Forget expired uploads older than ``older_than_s`` seconds; how many went."""
    return int(
        database.scalar(
            "WITH gone AS (DELETE FROM upload_intents WHERE expired_at IS NOT NULL"
            " AND expired_at < now() - make_interval(secs => :age) RETURNING 1)"
            " SELECT count(*) FROM gone",
            age=older_than_s,
        )
        or 0
    )
