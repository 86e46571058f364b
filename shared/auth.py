"""Who is calling and what their role lets them do: principals, roles, actions.

A :class:`Principal` is resolved once per request (``shared.api.authn``): a verified
token's subject or an API key, acting in one workspace with the role their membership
(or the key) gives. Roles are ordered; an action needs at least a role's level:

========  ===========================================================================
viewer    read: ask, search, read documents and their files, own sessions
editor    write: upload, reindex, approve, archive, edit a document's title/metadata
admin     admin: members, grants, access requests, knowledge-base settings, deletes
owner     owner: delete the workspace, make or remove owners
========  ===========================================================================

On a knowledge base, a member's level is their role's unless the membership is
``limited``; a grant (read or write) raises it for that knowledge base, and is all a
limited member has there. Admins and owners act on every knowledge base of their
workspace. The per-knowledge-base level is :func:`kb_level`; the database holds the
grants (``shared.store.access``) and the retrieval scope applies the same rule in SQL
(``shared.store.scope``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.errors import ForbiddenError

Role = Literal["owner", "admin", "editor", "viewer"]
Action = Literal["read", "write", "admin", "owner"]
Access = Literal["read", "write"]
Credential = Literal["token", "api_key", "ticket"]
ROLES: tuple[Role, ...] = ("owner", "admin", "editor", "viewer")

ROLE_LEVEL: dict[str, int] = {"viewer": 1, "editor": 2, "admin": 3, "owner": 4}
ACTION_LEVEL: dict[str, int] = {"read": 1, "write": 2, "admin": 3, "owner": 4}
ACCESS_LEVEL: dict[str, int] = {"read": 1, "write": 2}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, acting in one workspace.

    Attributes:
        id: Stable identity: the token's subject, or ``key:<id>`` for an API key.
        workspace: The workspace (name) the request acts in.
        role: The principal's role there; None if they are not a member.
        email: The verified email, if the credential carries one.
        limited: Only knowledge bases granted to them (see the module docstring).
        credential: What the request presented: an ID token, an API key, or a stream
            ticket (issued to either).
    """

    id: str
    workspace: str
    role: Role | None = None
    email: str | None = None
    limited: bool = False
    credential: Credential = "token"

    @property
    def credential_id(self) -> str:
        """The credential's id: the API key's public id, else the token's subject."""
        return self.id.removeprefix("key:")

    @property
    def level(self) -> int:
        """The role's level in the workspace (0: not a member)."""
        return ROLE_LEVEL.get(self.role or "", 0)

    @property
    def reads_every_kb(self) -> bool:
        """True if the principal sees every knowledge base of the workspace."""
        return self.level >= ROLE_LEVEL["admin"] or (self.level > 0 and not self.limited)

    def can(self, action: Action) -> bool:
        """True if the principal's role allows ``action`` in the workspace."""
        return self.level >= ACTION_LEVEL[action]


def kb_level(principal: Principal, grant: Access | None) -> int:
    """The principal's level on one knowledge base of their workspace, given its grant.

    Args:
        principal: The caller (their role and whether the membership is limited).
        grant: The caller's grant on the knowledge base, if any.

    Returns:
        0 (cannot see it), 1 (read), 2 (write), 3 or 4 (admin, owner).
    """
    if principal.level == 0:
        return 0
    if principal.level >= ROLE_LEVEL["admin"]:
        return principal.level
    granted = ACCESS_LEVEL[grant] if grant else 0
    return max(0 if principal.limited else principal.level, granted)


def authorize(principal: Principal, action: Action) -> None:
    """Raise ForbiddenError unless the principal's workspace role allows ``action``.

    For actions on a knowledge base or its documents, use ``shared.api.access``, which
    applies the grants as well.
    """
    if not principal.can(action):
        raise ForbiddenError(
            f"your role in workspace {principal.workspace!r} does not allow this",
            code="forbidden",
        )
