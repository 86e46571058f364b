"""Webhooks: fan each lifecycle event out to the webhooks that want it, and deliver.

The ``webhooks`` function consumes the lifecycle topic (:func:`fan_out`): for each
enabled webhook of the event's knowledge base that subscribed to its type, it enqueues
one Cloud Task named ``webhook-<event id>-<webhook id>``, so a redelivered event never
makes a second task. The ``deliver_webhook`` function runs each task
(:func:`deliver`): it loads the event from the outbox, signs the body
(:mod:`shared.webhook_signature`) and POSTs it through the SSRF-guarded client, which
checks the URL again before connecting. Every attempt is logged
(``webhook_deliveries``). A failed attempt (non-2xx, timeout, refused address) is
retried by the queue with backoff; after ``webhook_max_failures`` failures in a row
the webhook is disabled with the reason, until an admin enables it again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from shared.errors import UnsafeUrlError, UpstreamError
from shared.models import DocumentLifecycleEvent, WebhookTask
from shared.pipeline.outbox import lifecycle_message
from shared.runtime import Runtime
from shared.store import outbox as outbox_store
from shared.store import webhooks as store
from shared.webhook_signature import signed_headers

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retry", "failed", "skipped"]


def task_name(event_id: str, webhook_id: str) -> str:
    """The deterministic name of the task delivering an event to a webhook."""
    return f"webhook-{event_id}-{webhook_id}"


def fan_out(runtime: Runtime, event: DocumentLifecycleEvent) -> int:
    """Enqueue one delivery task per subscribed webhook; return how many were new.

    Events without an id or a type (published before the outbox) are not delivered.
    """
    if event.event_id is None or event.event_type is None:
        return 0
    webhooks = store.subscribed_webhooks(
        runtime.database, event.knowledge_base_id, event.event_type
    )
    queue = runtime.webhook_tasks
    created = 0
    for webhook in webhooks:
        task = WebhookTask(webhook_id=webhook.id, event_id=event.event_id)
        if queue.enqueue(task_name(event.event_id, webhook.id), task):
            created += 1
    return created


@dataclass(frozen=True)
class _Attempt:
    status: Literal["delivered", "failed", "refused"]
    response_code: int | None
    error: str | None


def deliver(runtime: Runtime, task: WebhookTask, attempt: int) -> Outcome:
    """Deliver one event to one webhook, once; log the attempt.

    Args:
        runtime: The instance's runtime.
        task: Which event to which webhook.
        attempt: This attempt's number (1 for the first).

    Returns:
        ``delivered``; ``skipped`` (webhook gone or disabled, event gone, already
        delivered); ``retry`` (failed, the queue should try again); ``failed``
        (failed and not worth retrying: the last attempt, a refused URL, or the
        webhook is disabled now).
    """
    database = runtime.database
    settings = runtime.settings
    webhook = store.get_webhook(database, task.webhook_id)
    event = outbox_store.get_event(database, task.event_id)
    if webhook is None or event is None:
        return "skipped"
    if store.was_delivered(database, webhook.id, event.id):
        return "skipped"  # a duplicate task: consumers see each event once
    if not webhook.enabled:
        with database.transaction() as session:
            store.record_delivery(
                session,
                webhook_id=webhook.id,
                event_id=event.id,
                event_type=event.type,
                attempt=attempt,
                status="skipped",
                error=f"webhook disabled: {webhook.disabled_reason or 'by hand'}",
            )
        return "skipped"
    body = lifecycle_message(event).model_dump_json().encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Ragline-Webhooks/1",
        **signed_headers(webhook.secret, event.id, body),
    }
    started = time.monotonic()
    result = _post(runtime, webhook.url, body, headers)
    duration_ms = int((time.monotonic() - started) * 1000)
    disabled = False
    with database.transaction() as session:
        store.record_delivery(
            session,
            webhook_id=webhook.id,
            event_id=event.id,
            event_type=event.type,
            attempt=attempt,
            status=result.status,
            response_code=result.response_code,
            duration_ms=duration_ms,
            error=result.error,
        )
        if result.status == "delivered":
            store.record_success(session, webhook.id)
        else:
            disabled = store.record_failure(
                session,
                webhook.id,
                settings.webhook_max_failures,
                f"{settings.webhook_max_failures} deliveries failed in a row;"
                f" the last: {result.error}",
            )
    if result.status == "delivered":
        return "delivered"
    log.warning(
        "webhook delivery failed",
        extra={"webhook_id": webhook.id, "event_id": event.id, "attempt": attempt},
    )
    final = disabled or result.status == "refused" or attempt >= settings.webhook_max_attempts
    return "failed" if final else "retry"


def _post(runtime: Runtime, url: str, body: bytes, headers: dict[str, str]) -> _Attempt:
    try:
        response = runtime.outbound.post(url, body, headers)
    except UnsafeUrlError as error:
        return _Attempt("refused", None, str(error))
    except UpstreamError as error:
        return _Attempt("failed", None, str(error))
    if 200 <= response.status < 300:
        return _Attempt("delivered", response.status, None)
    return _Attempt("failed", response.status, f"the receiver answered {response.status}")
