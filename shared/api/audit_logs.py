"""``GET /v1/audit-logs``: the audit log of the caller's workspace, for its admins.

Filters: ``actor``, ``action``, ``target`` (any of a row's target ids), ``outcome``
(``succeeded``, ``denied``, ``failed``), ``since`` and
``until`` (ISO 8601; ``until`` exclusive). Newest first, ``limit`` rows a page and a
``next_cursor`` while more remain. ``?format=jsonl`` or ``Accept: application/x-ndjson``
exports every matching row as JSON lines, streamed page by page.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared.api.http import Content, Route, instance_response
from shared.api.quotas import limits_of
from shared.auth import Principal, authorize
from shared.db import Database
from shared.errors import InvalidInputError
from shared.runtime import Runtime
from shared.store import audit as store

NDJSON = "application/x-ndjson"
EXPORT_PAGE = 500


class AuditQuery(BaseModel):
    """Query parameters of ``GET /v1/audit-logs``."""

    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(None, max_length=256)
    action: str | None = Field(None, max_length=128)
    target: str | None = Field(None, max_length=256)
    outcome: Literal["succeeded", "denied", "failed"] | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=64)
    format: Literal["json", "jsonl"] = "json"


class AuditPage(BaseModel):
    """Response of ``GET /v1/audit-logs`` (JSON): rows newest first, and where to go on."""

    audit_logs: list[dict[str, object]]
    next_cursor: str | None


def _decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        before = int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["before"])
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidInputError(
            "cursor is not one this API issued", code="invalid_cursor"
        ) from error
    if not 0 < before < 2**63:
        raise InvalidInputError("cursor is not one this API issued", code="invalid_cursor")
    return before


def _encode_cursor(before: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before}).encode()).decode()


def _export(database: Database, where: store.AuditFilter) -> Iterator[str]:
    while True:
        rows = store.read(database, where, EXPORT_PAGE)
        for row in rows:
            yield json.dumps(row.to_json()) + "\n"
        if len(rows) < EXPORT_PAGE:
            return
        where = store.AuditFilter(**{**where.__dict__, "before_id": rows[-1].id})


def get_audit_logs(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The workspace's audit rows, filtered and paged, or exported as JSON lines (admins)."""
    authorize(principal, "admin")
    query = AuditQuery.model_validate(request.args.to_dict())
    workspace_id = limits_of(runtime, principal.workspace).workspace_id
    if workspace_id is None:
        return instance_response(AuditPage(audit_logs=[], next_cursor=None))
    where = store.AuditFilter(
        workspace_id=workspace_id,
        actor=query.actor,
        action=query.action,
        target=query.target,
        outcome=query.outcome,
        since=query.since.astimezone(dt.UTC) if query.since else None,
        until=query.until.astimezone(dt.UTC) if query.until else None,
        before_id=_decode_cursor(query.cursor),
    )
    if query.format == "jsonl" or NDJSON in request.headers.get("Accept", ""):
        return Response(_export(runtime.database, where), mimetype=NDJSON)
    rows = store.read(runtime.database, where, query.limit + 1)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    page = AuditPage(
        audit_logs=[row.to_json() for row in rows],
        next_cursor=_encode_cursor(rows[-1].id) if more and rows else None,
    )
    return instance_response(page)


ROUTES = [
    Route(
        "GET",
        "/v1/audit-logs",
        get_audit_logs,
        query=AuditQuery,
        responses={200: AuditPage},
        # With format=jsonl or Accept: application/x-ndjson: every matching row, a line each.
        stream=Content((NDJSON,), "the matching audit rows as JSON lines"),
        tags=("audit",),
    )
]
