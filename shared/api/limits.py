"""Routes of a workspace's quotas and rate limits: read them (members), set them (admins).

``GET /v1/workspaces/{name}/limits`` answers each limit's value in force, whether it is
the workspace's own or the settings' default, and this month's token usage;
``PUT`` replaces the workspace's own values (``null`` or absent: the default; ``0``:
unlimited). The limits themselves are applied by :mod:`shared.api.quotas`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared.api.http import Route, instance_response, read_json
from shared.api.quotas import LIMIT_NAMES, default_limits, monthly_tokens_used
from shared.auth import ROLE_LEVEL, Principal
from shared.errors import ForbiddenError, NotFoundError
from shared.runtime import Runtime
from shared.store import access
from shared.store import quotas as store

# Generous ceilings that keep every value a PostgreSQL integer (the budget a bigint).
MAX_RATE = 1_000_000
MAX_TOKENS = 10**15


class LimitsBody(BaseModel):
    """Body of ``PUT /v1/workspaces/{name}/limits``: null or absent takes the default."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=0, le=MAX_RATE)
    api_key_requests_per_minute: int | None = Field(None, ge=0, le=MAX_RATE)
    questions_per_day: int | None = Field(None, ge=0, le=MAX_RATE)
    tokens_per_question: int | None = Field(None, ge=0, le=2**31 - 1)
    monthly_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)


class LimitView(BaseModel):
    """One limit in force: its value (0: unlimited) and where the value comes from."""

    value: int
    source: Literal["workspace", "default"]


class LimitsView(BaseModel):
    """Response of both limits routes."""

    workspace: str
    limits: dict[str, LimitView]
    monthly_tokens_used: int
    updated_by: str | None
    updated_at: dt.datetime | None


def _workspace_id(runtime: Runtime, principal: Principal, workspace: str, at_least: str) -> str:
    """The id of ``workspace`` if the caller's role there is ``at_least``; else 404/403.

    An API key has its role in its own workspace only (it has no membership row).
    """
    if principal.workspace == workspace and principal.role and principal.id.startswith("key:"):
        role: str | None = principal.role
        found = access.workspace_id(runtime.database, workspace)
    else:
        membership = access.membership(runtime.database, principal.id, workspace)
        role = membership.role if membership else None
        found = membership.workspace_id if membership else None
    if found is None or role is None:
        raise NotFoundError(f"workspace {workspace!r} not found", code="workspace_not_found")
    if ROLE_LEVEL[role] < ROLE_LEVEL[at_least]:
        raise ForbiddenError(
            f"your role in workspace {workspace!r} does not allow this", code="forbidden"
        )
    return found


def _view(runtime: Runtime, workspace: str, workspace_id: str) -> Response:
    own = store.get_limits(runtime.database, workspace_id)
    defaults = default_limits(runtime.settings)
    limits: dict[str, LimitView] = {}
    for name in LIMIT_NAMES:
        value = getattr(own, name) if own else None
        limits[name] = (
            LimitView(value=defaults[name], source="default")
            if value is None
            else LimitView(value=value, source="workspace")
        )
    view = LimitsView(
        workspace=workspace,
        limits=limits,
        monthly_tokens_used=monthly_tokens_used(runtime, workspace_id),
        updated_by=own.updated_by if own else None,
        updated_at=own.updated_at if own else None,
    )
    return instance_response(view)


def get_limits(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """The limits in force in a workspace and this month's token usage (members)."""
    workspace_id = _workspace_id(runtime, principal, workspace, "viewer")
    return _view(runtime, workspace, workspace_id)


def put_limits(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """Replace a workspace's own limits (admins); null or absent takes the default."""
    workspace_id = _workspace_id(runtime, principal, workspace, "admin")
    body = LimitsBody.model_validate(read_json(request))
    with runtime.database.transaction() as session:
        store.put_limits(session, workspace_id, body.model_dump(), principal.id)
    return _view(runtime, workspace, workspace_id)


ROUTES = [
    Route(
        "GET",
        "/v1/workspaces/<workspace>/limits",
        get_limits,
        responses={200: LimitsView},
        tags=("workspaces",),
    ),
    Route(
        "PUT",
        "/v1/workspaces/<workspace>/limits",
        put_limits,
        audit="limits.update",
        body=LimitsBody,
        responses={200: LimitsView},
        tags=("workspaces",),
    ),
]
