"""``deliver_webhook``: Cloud Tasks HTTP target that delivers one event to one webhook."""

from __future__ import annotations

import logging

import flask
import functions_framework
from pydantic import ValidationError

from shared.invocation import http_target
from shared.log import configure_logging
from shared.models import WebhookTask
from shared.pipeline.webhooks import deliver
from shared.runtime import get_runtime

configure_logging()
log = logging.getLogger(__name__)


@functions_framework.http
@http_target("deliver_webhook")
def deliver_webhook(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """Deliver the task's event; 2xx acknowledges the task, 503 makes Cloud Tasks retry."""
    try:
        task = WebhookTask.model_validate_json(request.get_data())
    except ValidationError as error:
        # Cloud Tasks retries any non-2xx, so a malformed task is acknowledged, not retried.
        log.error("dropping malformed webhook task: %s", error)
        return {"status": "ignored", "reason": "malformed task"}, 200
    retries = int(request.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
    outcome = deliver(get_runtime(), task, retries + 1)
    return {"status": outcome}, 503 if outcome == "retry" else 200
