"""Every route the API's HTTP functions serve, for the OpenAPI document.

The routes of the API reference itself (:mod:`shared.api.reference`) are not here:
that module imports this one when the document is first asked for.
"""

from __future__ import annotations

from shared.api import (
    analytics,
    answer,
    audit_logs,
    evaluation,
    identity,
    limits,
    manage,
    openai_compat,
    sources,
    upload,
    webhooks,
)
from shared.api.http import Route

# One list per routes table; the functions compose their routers from the same tables.
API_ROUTES: list[Route] = [
    *manage.ROUTES,
    *identity.ROUTES,
    *webhooks.ROUTES,
    *upload.ROUTES,
    *answer.ROUTES,
    *evaluation.ROUTES,
    *sources.ROUTES,
    *analytics.ROUTES,
    *openai_compat.ROUTES,
    *limits.ROUTES,
    *audit_logs.ROUTES,
]
