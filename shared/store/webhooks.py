"""Webhooks of knowledge bases (``webhooks``) and their delivery log (``webhook_deliveries``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session


@dataclass(frozen=True)
class Webhook:
    """A webhook as stored, its signing secret included (never shown after creation)."""

    id: str
    kb_id: str
    url: str
    events: list[str]
    secret: str
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        """The API representation: everything but the secret."""
        return {
            "id": self.id,
            "knowledge_base_id": self.kb_id,
            "url": self.url,
            "events": list(self.events),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "consecutive_failures": self.consecutive_failures,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt of an event to a webhook."""

    id: int
    webhook_id: str
    event_id: str
    event_type: str
    attempt: int
    status: str
    response_code: int | None
    duration_ms: int | None
    error: str | None
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "attempt": self.attempt,
            "status": self.status,
            "response_code": self.response_code,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
        }


_FIELDS = (
    "id::text AS id, kb_id::text AS kb_id, url, events, secret, enabled, disabled_reason,"
    " consecutive_failures, created_by, created_at, updated_at"
)
_COLUMNS = _FIELDS + " FROM webhooks"


def insert_webhook(
    session: Session, *, kb_id: str, url: str, events: list[str], secret: str, created_by: str
) -> Webhook:
    """Store a new, enabled webhook and return it."""
    webhook = session.record(
        Webhook,
        "INSERT INTO webhooks (kb_id, url, events, secret, created_by)"
        " VALUES (CAST(:k AS uuid), :u, CAST(:e AS text[]), :s, :by) RETURNING " + _FIELDS,
        k=kb_id,
        u=url,
        e=events,
        s=secret,
        by=created_by,
    )
    if webhook is None:  # INSERT ... RETURNING always returns the row
        raise RuntimeError("the inserted webhook was not returned")
    return webhook


def get_webhook(database: Database | Session, webhook_id: str) -> Webhook | None:
    """The webhook, or None."""
    return database.record(
        Webhook, f"SELECT {_COLUMNS} WHERE id = CAST(:id AS uuid)", id=webhook_id
    )


def list_webhooks(database: Database | Session, kb_id: str) -> list[Webhook]:
    """The knowledge base's webhooks, oldest first."""
    return database.records(
        Webhook,
        f"SELECT {_COLUMNS} WHERE kb_id = CAST(:k AS uuid) ORDER BY created_at, id",
        k=kb_id,
    )


def subscribed_webhooks(database: Database | Session, kb_id: str, event_type: str) -> list[Webhook]:
    """The knowledge base's enabled webhooks that want ``event_type``."""
    return database.records(
        Webhook,
        f"SELECT {_COLUMNS} WHERE kb_id = CAST(:k AS uuid) AND enabled AND :t = ANY(events)"
        " ORDER BY created_at, id",
        k=kb_id,
        t=event_type,
    )


def update_webhook(
    session: Session,
    webhook_id: str,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
) -> Webhook | None:
    """Change what is given; enabling clears the failure count and the reason."""
    return session.record(
        Webhook,
        "UPDATE webhooks SET url = coalesce(CAST(:u AS text), url),"
        " events = coalesce(CAST(:e AS text[]), events),"
        " enabled = coalesce(CAST(:en AS boolean), enabled),"
        " consecutive_failures = CASE WHEN CAST(:en AS boolean) THEN 0"
        "   ELSE consecutive_failures END,"
        " disabled_reason = CASE WHEN CAST(:en AS boolean) THEN NULL"
        "   WHEN NOT CAST(:en AS boolean) THEN 'disabled by hand' ELSE disabled_reason END,"
        " updated_at = now() WHERE id = CAST(:id AS uuid) RETURNING " + _FIELDS,
        id=webhook_id,
        u=url,
        e=events,
        en=enabled,
    )


def delete_webhook(session: Session, webhook_id: str) -> bool:
    """Delete the webhook and its delivery log; False if there was none."""
    return bool(
        session.run("DELETE FROM webhooks WHERE id = CAST(:id AS uuid) RETURNING 1", id=webhook_id)
    )


def was_delivered(database: Database | Session, webhook_id: str, event_id: str) -> bool:
    """Whether the event already reached the webhook (a duplicate task is then dropped)."""
    return bool(
        database.scalar(
            "SELECT 1 FROM webhook_deliveries WHERE webhook_id = CAST(:w AS uuid)"
            " AND event_id = CAST(:e AS uuid) AND status = 'delivered'",
            w=webhook_id,
            e=event_id,
        )
    )


def record_delivery(
    session: Session,
    *,
    webhook_id: str,
    event_id: str,
    event_type: str,
    attempt: int,
    status: str,
    response_code: int | None = None,
    duration_ms: int | None = None,
    error: str | None = None,
) -> bool:
    """Log one attempt; False if a concurrent attempt already logged it as delivered."""
    return bool(
        session.run(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, attempt, status,"
            " response_code, duration_ms, error) VALUES (CAST(:w AS uuid), CAST(:e AS uuid),"
            " :t, :a, :s, :c, :d, :err) ON CONFLICT DO NOTHING RETURNING 1",
            w=webhook_id,
            e=event_id,
            t=event_type,
            a=attempt,
            s=status,
            c=response_code,
            d=duration_ms,
            err=None if error is None else error[:2000],
        )
    )


def record_success(session: Session, webhook_id: str) -> None:
    """A delivery succeeded: the run of consecutive failures ends."""
    session.run(
        "UPDATE webhooks SET consecutive_failures = 0 WHERE id = CAST(:id AS uuid)"
        " AND consecutive_failures <> 0",
        id=webhook_id,
    )


def record_failure(session: Session, webhook_id: str, max_failures: int, reason: str) -> bool:
    """Count a failed delivery; disable the webhook at ``max_failures`` in a row.

    Returns:
        True if the webhook is disabled now.
    """
    return bool(
        session.scalar(
            "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1,"
            " enabled = enabled AND consecutive_failures + 1 < :n,"
            " disabled_reason = CASE WHEN enabled AND consecutive_failures + 1 >= :n"
            "   THEN :r ELSE disabled_reason END,"
            " updated_at = now() WHERE id = CAST(:id AS uuid) RETURNING NOT enabled",
            id=webhook_id,
            n=max_failures,
            r=reason[:2000],
        )
    )


def list_deliveries(database: Database | Session, webhook_id: str, limit: int) -> list[Delivery]:
    """The webhook's latest delivery attempts, newest first."""
    return database.records(
        Delivery,
        "SELECT id, webhook_id::text AS webhook_id, event_id::text AS event_id, event_type,"
        " attempt, status, response_code, duration_ms, error, created_at"
        " FROM webhook_deliveries WHERE webhook_id = CAST(:w AS uuid)"
        " ORDER BY id DESC LIMIT :n",
        w=webhook_id,
        n=limit,
    )


def prune_deliveries(session: Session, older_than_days: int) -> int:
    """Delete delivery log rows older than ``older_than_days``; return how many."""
    return len(
        session.run(
            "DELETE FROM webhook_deliveries WHERE created_at < now() - make_interval(days => :d)"
            " RETURNING 1",
            d=older_than_days,
        )
    )
