"""Every route of every HTTP function, in one list the route-complete tests share.

``tests/integration/test_identity.py`` checks this list against what the functions'
routers actually serve, so a new routes table that is not added here fails there, and
the tests that must name every route (the role matrix, the randomized isolation test,
the API fuzz test) cannot miss it.
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
    reference,
    sources,
    upload,
    webhooks,
)
from shared.api.http import Route

ALL_ROUTES: list[Route] = [
    *answer.ROUTES,
    *evaluation.ROUTES,
    *openai_compat.ROUTES,
    *manage.ROUTES,
    *identity.ROUTES,
    *upload.ROUTES,
    *webhooks.ROUTES,
    *analytics.ROUTES,
    *sources.ROUTES,
    *reference.ROUTES,
    *limits.ROUTES,
    *audit_logs.ROUTES,
]


def route_keys() -> set[str]:
    """``METHOD path`` of every served route."""
    return {f"{route.method} {route.path}" for route in ALL_ROUTES}
