"""CORS for the frontend origins a deployment configures (``cors_origins``).

A browser on another origin sends a preflight ``OPTIONS`` before a request with an
``Authorization`` header or a JSON body; every HTTP function answers it for configured
origins and adds ``Access-Control-Allow-Origin`` to their responses. An origin not
configured gets neither (the browser then refuses the response) and its preflight a
403. Credentials are bearer tokens in a header, never cookies, so no
``Allow-Credentials``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from werkzeug.wrappers import Request, Response

ALLOWED_HEADERS = (
    "Authorization, Content-Type, Accept, Last-Event-ID, X-Ragline-Workspace, X-Request-Id"
)
# What a page may read beyond the safelisted headers: when to retry, where a created
# resource is, why its credential failed (a 401's Bearer challenge), and the request's
# id (its audit row's).
EXPOSED_HEADERS = "Retry-After, Location, WWW-Authenticate, X-Request-Id"
PREFLIGHT_MAX_AGE_S = 600


def allowed_origin(request: Request, origins: Sequence[str]) -> str | None:
    """The request's ``Origin`` if it is configured (``*`` allows any), else None."""
    origin = request.headers.get("Origin")
    if not origin:
        return None
    return origin if origin in origins or "*" in origins else None


def is_preflight(request: Request) -> bool:
    """True for a CORS preflight request."""
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def preflight_response(origin: str, methods: Iterable[str]) -> Response:
    """The answer to an allowed preflight: which methods and headers may follow."""
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return add_cors_headers(response, origin)


def add_cors_headers(response: Response, origin: str | None) -> Response:
    """Let ``origin`` read ``response`` (no change if it is not allowed)."""
    response.headers.add("Vary", "Origin")
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return response
