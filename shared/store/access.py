"""Principals, workspace memberships, invitations and per-knowledge-base grants.

The rules (who may change what, the last owner) are in ``shared.identity.membership``;
these are the statements. Principals are keyed by their credential's subject; a
membership is ``workspace_members`` (role, limited); a grant is ``kb_grants``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shared.auth import Access, Role
from shared.db import Database, Session


@dataclass(frozen=True)
class Membership:
    """A principal's role in one workspace."""

    workspace_id: str
    workspace: str
    role: Role
    limited: bool

    def to_json(self) -> dict[str, Any]:
        """The API representation (``/v1/me``)."""
        return {"workspace": self.workspace, "role": self.role, "limited": self.limited}


@dataclass(frozen=True)
class Member:
    """A workspace member as the members list shows it."""

    principal: str
    email: str | None
    display_name: str | None
    role: str
    limited: bool
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return asdict(self)


@dataclass(frozen=True)
class Invitation:
    """A pending invitation by email."""

    email: str
    role: str
    limited: bool
    invited_by: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return asdict(self)


@dataclass(frozen=True)
class Grant:
    """A principal's grant on a knowledge base."""

    kb_id: str
    principal: str
    access: str
    granted_by: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return asdict(self)


def sign_in(session: Session, principal: str, email: str | None, name: str | None) -> None:
    """Record a sign-in and turn the invitations of its verified email into memberships.

    Args:
        session: A session, in a transaction (the invitations are consumed atomically).
        principal: The credential's subject.
        email: The verified email, or None (no invitation can match then).
        name: A display name, if the credential has one.
    """
    session.run(
        "INSERT INTO principals (id, email, display_name) VALUES (:p, :e, :n)"
        " ON CONFLICT (id) DO UPDATE SET email = coalesce(EXCLUDED.email, principals.email),"
        " display_name = coalesce(EXCLUDED.display_name, principals.display_name),"
        " last_seen_at = now()",
        p=principal,
        e=email,
        n=name,
    )
    if not email:
        return
    session.run(
        "WITH accepted AS (DELETE FROM workspace_invitations"
        " WHERE lower(email) = lower(:e) RETURNING workspace_id, role, limited)"
        " INSERT INTO workspace_members (workspace_id, principal, role, limited)"
        " SELECT workspace_id, :p, role, limited FROM accepted"
        " ON CONFLICT (workspace_id, principal) DO NOTHING",
        p=principal,
        e=email,
    )


def membership(database: Database | Session, principal: str, workspace: str) -> Membership | None:
    """The principal's membership of workspace ``workspace`` (by name), or None."""
    return database.record(
        Membership,
        "SELECT w.id::text AS workspace_id, w.name AS workspace, m.role, m.limited"
        " FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id"
        " WHERE m.principal = :p AND w.name = :w",
        p=principal,
        w=workspace,
    )


def memberships_of(database: Database | Session, principal: str) -> list[Membership]:
    """Every workspace the principal belongs to, by name."""
    return database.records(
        Membership,
        "SELECT w.id::text AS workspace_id, w.name AS workspace, m.role, m.limited"
        " FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id"
        " WHERE m.principal = :p ORDER BY w.name",
        p=principal,
    )


def workspace_id(database: Database | Session, name: str) -> str | None:
    """The id of workspace ``name``, or None."""
    found = database.scalar("SELECT id::text FROM workspaces WHERE name = :n", n=name)
    return None if found is None else str(found)


def lock_workspace(session: Session, workspace_id: str) -> bool:
    """Lock the workspace's row for the transaction; False if it is gone."""
    found = session.scalar(
        "SELECT 1 FROM workspaces WHERE id = CAST(:w AS uuid) FOR UPDATE", w=workspace_id
    )
    return found is not None


def delete_workspace_rows(session: Session, workspace_id: str) -> None:
    """Delete the workspace with its members, invitations, API keys and stream tickets.

    Chat sessions go with it (their foreign key cascades); its knowledge bases are
    removed first, one by one (``shared.pipeline.removal``).
    """
    session.run(
        "DELETE FROM stream_tickets WHERE workspace = (SELECT name FROM workspaces"
        " WHERE id = CAST(:w AS uuid))",
        w=workspace_id,
    )
    session.run("DELETE FROM workspaces WHERE id = CAST(:w AS uuid)", w=workspace_id)


def create_workspace(session: Session, name: str, owner: str) -> str | None:
    """Create workspace ``name`` owned by ``owner``; None if the name is taken."""
    workspace_id = session.scalar(
        "INSERT INTO workspaces (name) VALUES (:n) ON CONFLICT (name) DO NOTHING"
        " RETURNING id::text",
        n=name,
    )
    if workspace_id is None:
        return None
    put_member(session, str(workspace_id), owner, "owner", limited=False)
    return str(workspace_id)


def rename_workspace(session: Session, workspace_id: str, name: str) -> bool:
    """Rename a workspace; False if another workspace has that name."""
    taken = session.scalar(
        "SELECT 1 FROM workspaces WHERE name = :n AND id <> CAST(:w AS uuid)",
        n=name,
        w=workspace_id,
    )
    if taken:
        return False
    session.run(
        "UPDATE workspaces SET name = :n WHERE id = CAST(:w AS uuid)", n=name, w=workspace_id
    )
    return True


def put_member(
    session: Session, workspace_id: str, principal: str, role: str, *, limited: bool
) -> None:
    """Add a member or change their role (and whether the membership is limited)."""
    session.run(
        "INSERT INTO workspace_members (workspace_id, principal, role, limited)"
        " VALUES (CAST(:w AS uuid), :p, :r, :l)"
        " ON CONFLICT (workspace_id, principal) DO UPDATE SET role = EXCLUDED.role,"
        " limited = EXCLUDED.limited",
        w=workspace_id,
        p=principal,
        r=role,
        l=limited,
    )


def remove_member(session: Session, workspace_id: str, principal: str) -> None:
    """Remove a member and their grants on the workspace's knowledge bases."""
    session.run(
        "DELETE FROM kb_grants g USING knowledge_bases k WHERE k.id = g.kb_id"
        " AND k.workspace_id = CAST(:w AS uuid) AND g.principal = :p",
        w=workspace_id,
        p=principal,
    )
    session.run(
        "DELETE FROM workspace_members WHERE workspace_id = CAST(:w AS uuid) AND principal = :p",
        w=workspace_id,
        p=principal,
    )


def lock_members(session: Session, workspace_id: str) -> list[Member]:
    """The workspace's members, locked for the transaction (owner changes are serialised)."""
    session.run(
        "SELECT 1 FROM workspace_members WHERE workspace_id = CAST(:w AS uuid) FOR UPDATE",
        w=workspace_id,
    )
    return list_members(session, workspace_id)


def list_members(database: Database | Session, workspace_id: str) -> list[Member]:
    """The workspace's members, owners first, then by email."""
    return database.records(
        Member,
        "SELECT m.principal, p.email, p.display_name, m.role, m.limited,"
        " m.created_at::text AS created_at FROM workspace_members m"
        " LEFT JOIN principals p ON p.id = m.principal"
        " WHERE m.workspace_id = CAST(:w AS uuid)"
        " ORDER BY array_position(ARRAY['owner','admin','editor','viewer'], m.role),"
        " p.email NULLS LAST, m.principal",
        w=workspace_id,
    )


def invite(
    session: Session, workspace_id: str, email: str, role: str, *, limited: bool, invited_by: str
) -> None:
    """Record (or replace) an invitation of ``email`` to the workspace."""
    session.run(
        "INSERT INTO workspace_invitations (workspace_id, email, role, limited, invited_by)"
        " VALUES (CAST(:w AS uuid), lower(:e), :r, :l, :by)"
        " ON CONFLICT (workspace_id, email) DO UPDATE SET role = EXCLUDED.role,"
        " limited = EXCLUDED.limited, invited_by = EXCLUDED.invited_by",
        w=workspace_id,
        e=email,
        r=role,
        l=limited,
        by=invited_by,
    )


def list_invitations(database: Database | Session, workspace_id: str) -> list[Invitation]:
    """The workspace's pending invitations, by email."""
    return database.records(
        Invitation,
        "SELECT email, role, limited, invited_by, created_at::text AS created_at"
        " FROM workspace_invitations WHERE workspace_id = CAST(:w AS uuid) ORDER BY email",
        w=workspace_id,
    )


def grant_of(database: Database | Session, principal: str, kb_id: str) -> Access | None:
    """The principal's grant (``read`` or ``write``) on a knowledge base, or None."""
    found = database.scalar(
        "SELECT access FROM kb_grants WHERE kb_id = CAST(:k AS uuid) AND principal = :p",
        k=kb_id,
        p=principal,
    )
    # The column's CHECK constraint allows only these two.
    return "write" if found == "write" else "read" if found == "read" else None


def granted_kb_ids(database: Database | Session, principal: str, workspace: str) -> list[str]:
    """The knowledge bases of ``workspace`` granted to the principal."""
    return [
        str(kb_id)
        for kb_id in database.scalars(
            "SELECT g.kb_id::text FROM kb_grants g JOIN knowledge_bases k ON k.id = g.kb_id"
            " JOIN workspaces w ON w.id = k.workspace_id WHERE g.principal = :p AND w.name = :w"
            " ORDER BY g.kb_id",
            p=principal,
            w=workspace,
        )
    ]


def put_grant(session: Session, kb_id: str, principal: str, access: str, granted_by: str) -> None:
    """Grant (or change) ``access`` on a knowledge base to a principal."""
    session.run(
        "INSERT INTO kb_grants (kb_id, principal, access, granted_by)"
        " VALUES (CAST(:k AS uuid), :p, :a, :by)"
        " ON CONFLICT (kb_id, principal) DO UPDATE SET access = EXCLUDED.access,"
        " granted_by = EXCLUDED.granted_by",
        k=kb_id,
        p=principal,
        a=access,
        by=granted_by,
    )


def revoke_grant(session: Session, kb_id: str, principal: str) -> bool:
    """Revoke a principal's grant on a knowledge base; False if there was none."""
    return bool(
        session.run(
            "DELETE FROM kb_grants WHERE kb_id = CAST(:k AS uuid) AND principal = :p RETURNING 1",
            k=kb_id,
            p=principal,
        )
    )


def list_grants(database: Database | Session, kb_id: str) -> list[Grant]:
    """The grants on a knowledge base, by principal."""
    return database.records(
        Grant,
        "SELECT kb_id::text AS kb_id, principal, access, granted_by,"
        " created_at::text AS created_at FROM kb_grants WHERE kb_id = CAST(:k AS uuid)"
        " ORDER BY principal",
        k=kb_id,
    )


@dataclass(frozen=True)
class AccessRequest:
    """A member's request for access to a knowledge base."""

    id: str
    kb_id: str
    workspace_id: str
    principal: str
    access: str
    reason: str
    status: str
    decided_by: str | None
    created_at: str
    decided_at: str | None

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        body = asdict(self)
        del body["workspace_id"]
        return body


_REQUEST_COLUMNS = (
    "r.id::text AS id, r.kb_id::text AS kb_id, k.workspace_id::text AS workspace_id,"
    " r.principal, r.access, r.reason, r.status, r.decided_by,"
    " r.created_at::text AS created_at, r.decided_at::text AS decided_at"
    " FROM access_requests r JOIN knowledge_bases k ON k.id = r.kb_id"
)


def open_request(
    session: Session, kb_id: str, principal: str, access: str, reason: str
) -> AccessRequest:
    """The principal's pending request on a knowledge base, created or updated."""
    session.run(
        "INSERT INTO access_requests (kb_id, principal, access, reason)"
        " VALUES (CAST(:k AS uuid), :p, :a, :why)"
        " ON CONFLICT (kb_id, principal) WHERE status = 'pending'"
        " DO UPDATE SET access = EXCLUDED.access, reason = EXCLUDED.reason",
        k=kb_id,
        p=principal,
        a=access,
        why=reason,
    )
    found = session.record(
        AccessRequest,
        f"SELECT {_REQUEST_COLUMNS} WHERE r.kb_id = CAST(:k AS uuid) AND r.principal = :p"
        " AND r.status = 'pending'",
        k=kb_id,
        p=principal,
    )
    if found is None:  # the statement above guarantees the row
        raise RuntimeError("the access request just written is missing")
    return found


def get_request(database: Database | Session, request_id: str) -> AccessRequest | None:
    """The access request ``request_id``, or None."""
    return database.record(
        AccessRequest, f"SELECT {_REQUEST_COLUMNS} WHERE r.id = CAST(:id AS uuid)", id=request_id
    )


def list_requests(
    database: Database | Session, workspace_id: str, status: str | None
) -> list[AccessRequest]:
    """The access requests on the workspace's knowledge bases, newest first."""
    return database.records(
        AccessRequest,
        f"SELECT {_REQUEST_COLUMNS} WHERE k.workspace_id = CAST(:w AS uuid)"
        " AND (CAST(:s AS text) IS NULL OR r.status = :s) ORDER BY r.created_at DESC, r.id",
        w=workspace_id,
        s=status,
    )


def decide_request(session: Session, request_id: str, status: str, decided_by: str) -> bool:
    """Approve or deny a pending request; False if it is no longer pending."""
    return bool(
        session.run(
            "UPDATE access_requests SET status = :s, decided_by = :by, decided_at = now()"
            " WHERE id = CAST(:id AS uuid) AND status = 'pending' RETURNING 1",
            s=status,
            by=decided_by,
            id=request_id,
        )
    )
