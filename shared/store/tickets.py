"""Stream tickets: the statements that issue and redeem them (``stream_tickets``)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth import Role
from shared.db import Database


@dataclass(frozen=True)
class RedeemedTicket:
    """Who a redeemed ticket stands for, and the one path it opens."""

    principal: str
    email: str | None
    workspace: str
    role: Role | None
    limited: bool
    path: str


def issue_ticket(
    database: Database,
    *,
    ticket_sha256: bytes,
    principal: str,
    email: str | None,
    workspace: str,
    role: str | None,
    limited: bool,
    path: str,
    ttl_s: int,
) -> None:
    """Store a ticket's hash with the principal it stands for; expired ones are dropped."""
    with database.transaction() as session:
        session.run("DELETE FROM stream_tickets WHERE expires_at < now()")
        session.run(
            "INSERT INTO stream_tickets (ticket_sha256, principal, email, workspace, role,"
            " limited, path, expires_at) VALUES (:h, :p, :e, :w, :r, :l, :path,"
            " now() + make_interval(secs => :ttl))",
            h=ticket_sha256,
            p=principal,
            e=email,
            w=workspace,
            r=role,
            l=limited,
            path=path,
            ttl=ttl_s,
        )


def redeem_ticket(database: Database, ticket_sha256: bytes) -> RedeemedTicket | None:
    """Consume a ticket: its principal if it existed and had not expired, else None.

    The row is deleted in the same statement, so a ticket opens one stream only, even
    when two requests race with it.
    """
    return database.record(
        RedeemedTicket,
        "DELETE FROM stream_tickets WHERE ticket_sha256 = :h AND expires_at > now()"
        " RETURNING principal, email, workspace, role, limited, path",
        h=ticket_sha256,
    )
