"""``manage``: knowledge bases, documents, members, grants, webhooks, sources, analytics,
limits, audit."""

from __future__ import annotations

import flask
import functions_framework

from shared.api import analytics, audit_logs, identity, limits, reference, sources, webhooks
from shared.api.http import Router
from shared.api.manage import ROUTES
from shared.invocation import http_target
from shared.log import configure_logging

configure_logging()
_router = Router(
    ROUTES
    + identity.ROUTES
    + webhooks.ROUTES
    + sources.ROUTES
    + analytics.ROUTES
    + limits.ROUTES
    + audit_logs.ROUTES
    + reference.ROUTES
)


@functions_framework.http
@http_target("manage")
def manage(request: flask.Request) -> flask.Response:
    """Route the request to its handler."""
    return _router(request)  # type: ignore[return-value]
