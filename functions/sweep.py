"""``sweep``: re-drive stalled versions, expire abandoned uploads (Cloud Scheduler)."""

from __future__ import annotations

import flask
import functions_framework

from shared.invocation import http_target
from shared.log import configure_logging
from shared.pipeline import sweeper
from shared.runtime import get_runtime

configure_logging()


@functions_framework.http
@http_target("sweep")
def sweep(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """Re-drive stalled versions (fail hopeless ones); expire uploads that never came."""
    return sweeper.sweep(get_runtime()).to_json(), 200
