"""``sweep``: re-drive stalled versions (Cloud Scheduler, every few minutes)."""

from __future__ import annotations

import flask
import functions_framework

from shared.invocation import http_target
from shared.log import configure_logging
from shared.pipeline.sweeper import sweep_stalled
from shared.runtime import get_runtime

configure_logging()


@functions_framework.http
@http_target("sweep")
def sweep(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """Re-drive versions with no recent progress; fail those re-driven too often."""
    return sweep_stalled(get_runtime()).to_json(), 200
