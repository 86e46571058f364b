"""``upload``: multipart uploads and signed upload URLs."""

from __future__ import annotations

import flask
import functions_framework

from shared.api.http import Router
from shared.api.upload import ROUTES
from shared.invocation import http_target
from shared.log import configure_logging

configure_logging()
_router = Router(ROUTES)


@functions_framework.http
@http_target("upload")
def upload(request: flask.Request) -> flask.Response:
    """Route the request to its handler."""
    return _router(request)  # type: ignore[return-value]
