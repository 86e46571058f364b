"""``sync``: Cloud Tasks HTTP target that runs one step of a source's sync run."""

from __future__ import annotations

import logging

import flask
import functions_framework
from pydantic import ValidationError

from shared.invocation import http_target
from shared.log import configure_logging
from shared.models import SyncTask
from shared.pipeline.sync import give_up, run_task
from shared.runtime import get_runtime

configure_logging()
log = logging.getLogger(__name__)


@functions_framework.http
@http_target("sync")
def sync(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """List a run's roots or visit one item; 2xx acknowledges, 5xx makes Cloud Tasks retry."""
    try:
        task = SyncTask.model_validate_json(request.get_data())
    except ValidationError as error:
        # Cloud Tasks retries any non-2xx, so a malformed task is acknowledged, not retried.
        log.error("dropping malformed sync task: %s", error)
        return {"status": "ignored", "reason": "malformed task"}, 200
    runtime = get_runtime()
    retries = int(request.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
    try:
        outcome = run_task(runtime, task)
    except Exception as error:
        # Cloud Tasks has no dead-letter queue: on the last attempt, fail the item here.
        if retries + 1 >= runtime.settings.max_attempts:
            log.warning("sync task failed for the last time: %s", error)
            give_up(runtime, task, error)
            return {"status": "failed"}, 200
        raise
    return {"status": outcome}, 200
