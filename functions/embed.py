"""``embed``: Cloud Tasks HTTP target that embeds one batch of a version's chunks."""

from __future__ import annotations

import logging

import flask
import functions_framework
from pydantic import ValidationError

from shared.invocation import http_target
from shared.log import configure_logging
from shared.models import EmbedTask
from shared.pipeline.runner import run_step
from shared.pipeline.steps import dead_letter, embed_batch
from shared.runtime import get_runtime

configure_logging()
log = logging.getLogger(__name__)


@functions_framework.http
@http_target("embed")
def embed(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """Embed the task's chunks; 2xx acknowledges the task, 5xx makes Cloud Tasks retry."""
    try:
        task = EmbedTask.model_validate_json(request.get_data())
    except ValidationError as error:
        # Cloud Tasks retries any non-2xx, so a malformed task is acknowledged, not retried.
        log.error("dropping malformed embed task: %s", error)
        return {"status": "ignored", "reason": "malformed task"}, 200
    runtime = get_runtime()
    retries = int(request.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
    try:
        run_step(runtime, "embed", task.version_id, lambda: embed_batch(runtime, task))
    except Exception:
        # Cloud Tasks has no dead-letter queue: on the last attempt, fail the version here.
        if retries + 1 >= runtime.settings.max_attempts:
            dead_letter(runtime, task.version_id, retries + 1)
            return {"status": "failed"}, 200
        raise
    return {"status": "ok"}, 200
