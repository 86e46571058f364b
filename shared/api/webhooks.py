"""Routes of webhooks: register, list, change and remove them, and read their deliveries.

Served by the ``manage`` function; only admins of a knowledge base manage its webhooks.
A webhook's URL is checked by the SSRF guard when it is registered or changed (and
again at every delivery); its secret is in the creation response only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from werkzeug.wrappers import Request, Response

from shared.api.access import require_kb
from shared.api.http import Reply, Route, model_response, read_json, read_query
from shared.auth import Principal
from shared.errors import NotFoundError
from shared.ids import is_uuid
from shared.models import LIFECYCLE_EVENT_TYPES
from shared.runtime import Runtime
from shared.store import webhooks as store
from shared.store.webhooks import Webhook
from shared.webhook_signature import new_secret


def _known_events(events: list[str] | None) -> list[str] | None:
    """The event types asked for, each once; every one must exist."""
    if events is None:
        return None
    unknown = sorted(set(events) - set(LIFECYCLE_EVENT_TYPES))
    if unknown:
        raise ValueError(
            f"unknown event types {unknown}; known: {', '.join(LIFECYCLE_EVENT_TYPES)}"
        )
    return list(dict.fromkeys(events))


class WebhookBody(BaseModel):
    """Body of ``POST /v1/knowledge-bases/{kb}/webhooks``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1)
    enabled: bool = True

    _events = field_validator("events")(_known_events)


class WebhookPatch(BaseModel):
    """Body of ``PATCH /v1/knowledge-bases/{kb}/webhooks/{id}``: what changes."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Field(None, min_length=1)
    enabled: bool | None = None

    _events = field_validator("events")(_known_events)


class DeliveriesQuery(BaseModel):
    """Query of ``GET /v1/webhooks/{id}/deliveries``."""

    limit: int = Field(100, ge=1, le=1000)


class WebhookReply(Reply):
    """A webhook, without its secret."""

    id: str
    knowledge_base_id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_by: str
    created_at: str
    updated_at: str


class NewWebhook(WebhookReply):
    """A webhook just registered, with its signing secret (shown this once)."""

    secret: str


class WebhookList(Reply):
    """Body of ``GET /v1/knowledge-bases/{kb}/webhooks``."""

    webhooks: list[WebhookReply]


class DeliveryReply(Reply):
    """One attempt to deliver an event to a webhook."""

    id: int
    webhook_id: str
    event_id: str
    event_type: str
    attempt: int
    status: str
    response_code: int | None
    duration_ms: int | None
    error: str | None
    created_at: str


class DeliveryList(Reply):
    """Body of ``GET /v1/webhooks/{id}/deliveries``, newest first."""

    deliveries: list[DeliveryReply]


def _find(runtime: Runtime, webhook_id: str) -> Webhook | None:
    """The webhook, or None; an id that is no UUID names none (never a database error)."""
    return store.get_webhook(runtime.database, webhook_id) if is_uuid(webhook_id) else None


def _webhook_of(runtime: Runtime, kb_id: str, webhook_id: str) -> Webhook:
    webhook = _find(runtime, webhook_id)
    if webhook is None or webhook.kb_id != kb_id:
        raise NotFoundError(f"webhook {webhook_id!r} not found", code="webhook_not_found")
    return webhook


def post_webhook(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """Register a webhook (admins). Its signing secret is in this response only."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    body = WebhookBody.model_validate(read_json(request))
    runtime.outbound.guard.check(body.url)  # refused before any connection: 400
    with runtime.database.transaction() as session:
        webhook = store.insert_webhook(
            session,
            kb_id=kb.id,
            url=body.url,
            events=list(body.events),
            secret=new_secret(),
            created_by=principal.id,
        )
        if not body.enabled:
            webhook = store.update_webhook(session, webhook.id, enabled=False) or webhook
    return model_response(NewWebhook, {**webhook.to_json(), "secret": webhook.secret}, 201)


def get_webhooks(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """The knowledge base's webhooks, without their secrets (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    webhooks = store.list_webhooks(runtime.database, kb.id)
    return model_response(WebhookList, {"webhooks": [webhook.to_json() for webhook in webhooks]})


def get_webhook(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str, webhook_id: str
) -> Response:
    """One webhook, without its secret (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    return model_response(WebhookReply, _webhook_of(runtime, kb.id, webhook_id).to_json())


def patch_webhook(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str, webhook_id: str
) -> Response:
    """Change a webhook's URL, events or state (admins); ``enabled: true`` re-enables it."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    body = WebhookPatch.model_validate(read_json(request))
    _webhook_of(runtime, kb.id, webhook_id)
    if body.url is not None:
        runtime.outbound.guard.check(body.url)
    with runtime.database.transaction() as session:
        webhook = store.update_webhook(
            session,
            webhook_id,
            url=body.url,
            events=None if body.events is None else list(body.events),
            enabled=body.enabled,
        )
    if webhook is None:
        raise NotFoundError(f"webhook {webhook_id!r} not found", code="webhook_not_found")
    return model_response(WebhookReply, webhook.to_json())


def delete_webhook(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str, webhook_id: str
) -> Response:
    """Remove a webhook and its delivery log (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    _webhook_of(runtime, kb.id, webhook_id)
    with runtime.database.transaction() as session:
        store.delete_webhook(session, webhook_id)
    return Response(status=204)


def get_deliveries(
    runtime: Runtime, request: Request, principal: Principal, webhook_id: str
) -> Response:
    """The webhook's latest delivery attempts, newest first (admins of its knowledge base)."""
    webhook = _find(runtime, webhook_id)
    missing = NotFoundError(f"webhook {webhook_id!r} not found", code="webhook_not_found")
    if webhook is None:
        raise missing
    try:
        require_kb(runtime.database, webhook.kb_id, principal, "admin")
    except NotFoundError:
        raise missing from None
    limit = read_query(request, DeliveriesQuery).limit
    deliveries = store.list_deliveries(runtime.database, webhook.id, limit)
    return model_response(
        DeliveryList, {"deliveries": [delivery.to_json() for delivery in deliveries]}
    )


HOOK = "/v1/knowledge-bases/<kb_id>/webhooks/<webhook_id>"
TAGS = ("webhooks",)

ROUTES = [
    Route(
        "POST",
        "/v1/knowledge-bases/<kb_id>/webhooks",
        post_webhook,
        audit="webhook.create",
        body=WebhookBody,
        responses={201: NewWebhook},
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/knowledge-bases/<kb_id>/webhooks",
        get_webhooks,
        responses={200: WebhookList},
        tags=TAGS,
    ),
    Route("GET", HOOK, get_webhook, responses={200: WebhookReply}, tags=TAGS),
    Route(
        "PATCH",
        HOOK,
        patch_webhook,
        audit="webhook.update",
        body=WebhookPatch,
        responses={200: WebhookReply},
        tags=TAGS,
    ),
    Route("DELETE", HOOK, delete_webhook, audit="webhook.delete", responses={204: None}, tags=TAGS),
    Route(
        "GET",
        "/v1/webhooks/<webhook_id>/deliveries",
        get_deliveries,
        query=DeliveriesQuery,
        responses={200: DeliveryList},
        tags=TAGS,
    ),
]
