"""``manage``: knowledge bases, documents, workspaces, members, grants, webhooks, limits, audit."""

from __future__ import annotations

import flask
import functions_framework

from shared.api import audit_logs, identity, limits, webhooks
from shared.api.http import Router
from shared.api.manage import ROUTES
from shared.invocation import http_target
from shared.log import configure_logging

configure_logging()
_router = Router(ROUTES + identity.ROUTES + webhooks.ROUTES + limits.ROUTES + audit_logs.ROUTES)


@functions_framework.http
@http_target("manage")
def manage(request: flask.Request) -> flask.Response:
    """Route the request to its handler."""
    return _router(request)  # type: ignore[return-value]
