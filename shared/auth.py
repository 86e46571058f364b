"""Who is calling, and may they do this? The hook every route goes through.

Until the identity issue lands, every request runs as one built-in principal (the
local stack's single user). Routes still call :func:`authorize` with the action and
knowledge base, so enforcing roles and grants later changes this module only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shared.config import get_settings

Action = Literal["read", "write", "admin"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    id: str
    workspace: str


def authenticate(request: Any) -> Principal:
    """Return the caller of ``request`` (the built-in principal for now)."""
    settings = get_settings()
    return Principal(id=settings.default_principal, workspace=settings.default_workspace)


def authorize(principal: Principal, action: Action, kb_id: str | None = None) -> None:
    """Raise ForbiddenError if ``principal`` may not do ``action`` on ``kb_id``.

    Every principal may do everything until roles and grants are enforced.
    """
    return None
