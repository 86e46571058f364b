"""``answer``: questions answered from the documents, with citations (JSON and SSE).

Evaluation runs and the OpenAI-compatible chat routes are served here too: they answer
questions the same way.
"""

from __future__ import annotations

import flask
import functions_framework

from shared.api import evaluation, openai_compat
from shared.api.answer import ROUTES
from shared.api.http import Router
from shared.invocation import http_target
from shared.log import configure_logging

configure_logging()
_router = Router(ROUTES + evaluation.ROUTES + openai_compat.ROUTES)


@functions_framework.http
@http_target("answer")
def answer(request: flask.Request) -> flask.Response:
    """Route the request to its handler."""
    return _router(request)  # type: ignore[return-value]
