"""Routes of sources: create, list, read, change and delete them, and sync one now.

Served by the ``manage`` function. Readers of a knowledge base see its sources; editors
create, change and sync them; deleting a source deletes its documents, so it takes what
deleting a document takes (admins). A source's configuration is validated by its type
(:mod:`shared.sources.registry`) and every URL it names is checked by the SSRF guard
before anything connects: a refused one is a 400.

A sync asked for while one runs joins it: the answer is the running run (202,
``started: false``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from werkzeug.wrappers import Request, Response

from shared.api.access import require_kb
from shared.api.http import Route, instance_response, read_json
from shared.auth import Action, Principal
from shared.errors import ConflictError, NotFoundError
from shared.pipeline.sync import delete_source, start_sync
from shared.runtime import Runtime
from shared.sources.registry import source_type, validate_config
from shared.store import sources as store
from shared.store.sources import Source, SourceRun

_EVERY = re.compile(r"(\d{1,5})([mhd])")
_MINUTES = {"m": 1, "h": 60, "d": 1440}
# Scheduled runs at most every 15 minutes, at least every 30 days.
MIN_SCHEDULE_MINUTES = 15
MAX_SCHEDULE_MINUTES = 30 * 1440


class Schedule(BaseModel):
    """When a source syncs on its own: ``{"every": "6h"}`` (minutes, hours or days)."""

    model_config = ConfigDict(extra="forbid")

    every: str = Field(max_length=8, examples=["1h", "6h", "1d"])

    @field_validator("every")
    @classmethod
    def _interval(cls, value: str) -> str:
        match = _EVERY.fullmatch(value)
        if match is None:
            raise ValueError("must be a number and m, h or d, e.g. 6h")
        minutes = int(match.group(1)) * _MINUTES[match.group(2)]
        if not MIN_SCHEDULE_MINUTES <= minutes <= MAX_SCHEDULE_MINUTES:
            raise ValueError("must be between 15m and 30d")
        return value

    @property
    def minutes(self) -> int:
        """The interval in minutes."""
        match = _EVERY.fullmatch(self.every)
        return int(match.group(1)) * _MINUTES[match.group(2)] if match else 0


def _schedule_text(minutes: int) -> str:
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


class CreateSource(BaseModel):
    """Body of ``POST /v1/knowledge-bases/{kb}/sources``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=40)
    config: dict[str, Any]
    schedule: Schedule | None = None
    paused: bool = False


class UpdateSource(BaseModel):
    """Body of ``PATCH /v1/sources/{id}``: what changes (``schedule: null`` removes it)."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = None
    schedule: Schedule | None = None
    paused: bool | None = None


class RunView(BaseModel):
    """One sync run: when, how it ended, what it did."""

    id: str
    trigger: Literal["created", "manual", "schedule"] | str
    status: Literal["running", "finishing", "succeeded", "partial", "failed"] | str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    counts: dict[str, int]
    truncated: bool
    last_error: str | None


class SourceView(BaseModel):
    """A source with its state: running or idle, the last run's summary, the next run."""

    id: str
    knowledge_base_id: str
    type: str
    config: dict[str, Any]
    schedule: Schedule | None
    paused: bool
    status: Literal["running", "idle", "paused"]
    current_run: RunView | None
    last_run: RunView | None
    last_sync_started_at: dt.datetime | None
    last_sync_ended_at: dt.datetime | None
    counts: dict[str, int]
    last_error: str | None
    next_run_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class SourceList(BaseModel):
    """Body of ``GET /v1/knowledge-bases/{kb}/sources``."""

    sources: list[SourceView]


class SyncStarted(BaseModel):
    """Answer of ``POST /v1/sources/{id}/sync``: the run started, or the one it joined."""

    run: RunView
    started: bool


def run_view(runtime: Runtime, run: SourceRun) -> RunView:
    """The API view of a run (a running run's counts are read from its items)."""
    counts = run.counts
    if counts is None:
        counts = store.outcome_counts(runtime.database, run.id)
    return RunView(
        id=run.id,
        trigger=run.trigger,
        status=run.status,
        started_at=run.started_at,
        ended_at=run.ended_at,
        counts=counts,
        truncated=run.truncated,
        last_error=run.last_error,
    )


def source_view(runtime: Runtime, source: Source) -> SourceView:
    """The API view of a source with its current and last run."""
    database = runtime.database
    current = store.get_run(database, source.current_run_id) if source.current_run_id else None
    last = store.get_run(database, source.last_run_id) if source.last_run_id else None
    last_view = None if last is None else run_view(runtime, last)
    status: Literal["running", "idle", "paused"] = (
        "running" if current is not None else "paused" if source.paused else "idle"
    )
    return SourceView(
        id=source.id,
        knowledge_base_id=source.kb_id,
        type=source.type,
        config=source.config,
        schedule=(
            None
            if source.schedule_minutes is None
            else Schedule(every=_schedule_text(source.schedule_minutes))
        ),
        paused=source.paused,
        status=status,
        current_run=None if current is None else run_view(runtime, current),
        last_run=last_view,
        last_sync_started_at=None if last is None else last.started_at,
        last_sync_ended_at=None if last is None else last.ended_at,
        counts=dict.fromkeys(store.OUTCOMES, 0) if last_view is None else last_view.counts,
        last_error=None if last is None else last.last_error,
        next_run_at=None if source.paused else source.next_run_at,
        created_by=source.created_by,
        created_at=source.created_at,
        updated_at=source.updated_at,
    )


def _check_urls(runtime: Runtime, kind: str, config: Any) -> None:
    """Refuse (400) any URL of the config the SSRF guard refuses, before any connection."""
    urls = source_type(kind).outbound_urls
    for url in urls(config) if urls is not None else []:
        runtime.outbound.guard.check(url)


def _source_of(runtime: Runtime, principal: Principal, source_id: str, action: Action) -> Source:
    """The source if the principal may do ``action`` on its knowledge base (else 404/403)."""
    missing = NotFoundError(f"source {source_id!r} not found", code="source_not_found")
    source = store.get_source(runtime.database, source_id)
    if source is None:
        raise missing
    try:
        require_kb(runtime.database, source.kb_id, principal, action)
    except NotFoundError:
        raise missing from None
    return source


def post_source(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """Create a source (editors) and start its first sync unless it is paused."""
    kb = require_kb(runtime.database, kb_id, principal, "write")
    body = CreateSource.model_validate(read_json(request))
    config = validate_config(body.type, body.config, runtime.settings)
    _check_urls(runtime, body.type, config)
    with runtime.database.transaction() as session:
        source = store.insert_source(
            session,
            workspace_id=kb.workspace_id,
            kb_id=kb.id,
            source_type=body.type,
            config=config.model_dump(mode="json", exclude_none=True),
            schedule_minutes=None if body.schedule is None else body.schedule.minutes,
            paused=body.paused,
            created_by=principal.id,
        )
    if not body.paused:
        start_sync(runtime, source.id, "created")
    return instance_response(source_view(runtime, _reload(runtime, source.id)), 201)


def _reload(runtime: Runtime, source_id: str) -> Source:
    source = store.get_source(runtime.database, source_id)
    if source is None:
        raise NotFoundError(f"source {source_id!r} not found", code="source_not_found")
    return source


def get_sources(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """The knowledge base's sources with their state (readers)."""
    kb = require_kb(runtime.database, kb_id, principal)
    views = [source_view(runtime, source) for source in store.list_sources(runtime.database, kb.id)]
    return instance_response(SourceList(sources=views))


def get_source(
    runtime: Runtime, request: Request, principal: Principal, source_id: str
) -> Response:
    """One source with its state (readers of its knowledge base)."""
    return instance_response(
        source_view(runtime, _source_of(runtime, principal, source_id, "read"))
    )


def patch_source(
    runtime: Runtime, request: Request, principal: Principal, source_id: str
) -> Response:
    """Change a source's config, schedule or pause (editors); a new config waits for no run."""
    source = _source_of(runtime, principal, source_id, "write")
    body = UpdateSource.model_validate(read_json(request))
    config = None
    if body.config is not None:
        if source.current_run_id is not None:
            raise ConflictError(
                "the source is syncing; change its config once the run ended",
                code="sync_running",
            )
        validated = validate_config(source.type, body.config, runtime.settings)
        _check_urls(runtime, source.type, validated)
        config = validated.model_dump(mode="json", exclude_none=True)
    set_schedule = "schedule" in body.model_fields_set
    with runtime.database.transaction() as session:
        updated = store.update_source(
            session,
            source.id,
            config=config,
            schedule_minutes=None if body.schedule is None else body.schedule.minutes,
            set_schedule=set_schedule,
            paused=body.paused,
        )
    if updated is None:
        raise NotFoundError(f"source {source_id!r} not found", code="source_not_found")
    return instance_response(source_view(runtime, updated))


def delete_source_route(
    runtime: Runtime, request: Request, principal: Principal, source_id: str
) -> Response:
    """Delete a source and every document it brought (admins)."""
    source = _source_of(runtime, principal, source_id, "admin")
    delete_source(runtime, source.id)
    return Response(status=204)


def post_sync(runtime: Runtime, request: Request, principal: Principal, source_id: str) -> Response:
    """Sync the source now (editors): 202 with the run, or the running one it joined."""
    source = _source_of(runtime, principal, source_id, "write")
    start = start_sync(runtime, source.id, "manual")
    if start is None:  # only scheduled starts decline
        raise ConflictError("the sync could not start", code="sync_not_started")
    return instance_response(
        SyncStarted(run=run_view(runtime, start.run), started=start.started), 202
    )


TAGS = ("sources",)
SOURCE = "/v1/sources/<source_id>"

ROUTES = [
    Route(
        "POST",
        "/v1/knowledge-bases/<kb_id>/sources",
        post_source,
        audit="source.create",
        body=CreateSource,
        responses={201: SourceView},
        errors=frozenset({409}),
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/knowledge-bases/<kb_id>/sources",
        get_sources,
        responses={200: SourceList},
        tags=TAGS,
    ),
    Route("GET", SOURCE, get_source, responses={200: SourceView}, tags=TAGS),
    Route(
        "PATCH",
        SOURCE,
        patch_source,
        audit="source.update",
        body=UpdateSource,
        responses={200: SourceView},
        errors=frozenset({409}),
        tags=TAGS,
    ),
    Route(
        "DELETE",
        SOURCE,
        delete_source_route,
        audit="source.delete",
        responses={204: None},
        tags=TAGS,
    ),
    Route(
        "POST",
        f"{SOURCE}/sync",
        post_sync,
        audit="source.sync",
        responses={202: SyncStarted},
        tags=TAGS,
    ),
]
