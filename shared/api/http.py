"""HTTP plumbing shared by the HTTP functions: routing, JSON, errors, auth hook.

Errors always render as ``{"error": {"code", "message"}}`` with the right status; an
unexpected exception is logged and becomes a 500 with no internals leaked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from shared.api import audit
from shared.api.authn import authenticate
from shared.api.cors import add_cors_headers, allowed_origin, is_preflight, preflight_response
from shared.api.quotas import check_request, limits_of
from shared.api.text_input import check_json, check_pairs
from shared.auth import Principal
from shared.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    QuotaExceededError,
    TooLargeError,
    UnauthenticatedError,
    UnavailableError,
    UpstreamError,
)
from shared.runtime import Runtime, get_runtime
from shared.trace_context import bind
from shared.tracing import span

log = logging.getLogger(__name__)

Handler = Callable[..., Response]

# Each domain error's HTTP status: the one place statuses are chosen (most specific
# class first; the first match wins).
ERROR_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (InvalidInputError, 400),
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
    (QuotaExceededError, 429),
    (UnavailableError, 503),
)


def status_of(error: DomainError) -> int:
    """The HTTP status of a domain error (500 for one the table does not name)."""
    if isinstance(error, UpstreamError):
        # The gateway's own failure: 503 when retrying later may work, else 502.
        return 503 if error.retryable else 502
    for kind, status in ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return 500


def bearer_challenge(error: UnauthenticatedError) -> str:
    """The ``WWW-Authenticate`` value of a 401 (RFC 6750, section 3).

    No credential at all gets the bare challenge; a credential that failed says
    ``invalid_token`` and the error's code, so a client knows to get a new token.
    """
    if error.code == "token_missing":
        return 'Bearer realm="ragline"'
    return f'Bearer realm="ragline", error="invalid_token", error_description="{error.code}"'


@dataclass(frozen=True)
class Route:
    """One API route: method, werkzeug path pattern, handler.

    Every route requires an authenticated principal unless it is ``public`` (the
    health check only). A route that changes something, answers or retrieves names its
    ``audit`` action (``noun.verb``, the noun being the kind of its path's target): each
    request to it leaves exactly one audit row (:mod:`shared.api.audit`).
    """

    method: str
    path: str
    handler: Handler
    public: bool = False
    audit: str | None = None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(
        json.dumps(body, default=str), status=status, mimetype="application/json", headers=headers
    )


def error_response(status: int, code: str, message: str) -> Response:
    """An error in the API's format."""
    return json_response({"error": {"code": code, "message": message}}, status)


def quota_response(error: QuotaExceededError) -> Response:
    """A 429: the error with the limit's name and, when waiting helps, ``Retry-After``."""
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "limit": error.limit,
            "retry_after": error.retry_after_s,
        }
    }
    headers = {} if error.retry_after_s is None else {"Retry-After": str(error.retry_after_s)}
    return json_response(body, status_of(error), headers)


def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (400 with a clear message otherwise).

    Every key and string in it passes the control-character rule
    (:mod:`shared.api.text_input`), and numbers are finite (no ``NaN`` or
    ``Infinity``, which JSON does not define).
    """
    if not request.data:
        raise InvalidInputError("request body must be a JSON object", code="invalid_json")
    try:
        body = json.loads(request.data, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(
            f"request body is not valid JSON: {error}", code="invalid_json"
        ) from error
    if not isinstance(body, dict):
        raise InvalidInputError("request body must be a JSON object", code="invalid_json")
    return dict(check_json(body))


def _reject_constant(name: str) -> Any:
    raise InvalidInputError(
        f"request body is not valid JSON: {name} is not a JSON number", code="invalid_json"
    )


def check_request_text(request: Request, path_args: Mapping[str, Any]) -> None:
    """Apply the control-character rule to the path, query and headers of a request.

    Raises:
        InvalidInputError: ``invalid_input``, naming the offending part.
    """
    check_pairs(((name, str(value)) for name, value in path_args.items()), "path segment")
    check_pairs(request.args.items(multi=True), "query parameter")
    check_pairs(request.headers.items(), "header")


def int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low..high`` (400 otherwise)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise InvalidInputError(f"{name} must be an integer", code="invalid_parameter") from error
    if not low <= value <= high:
        raise InvalidInputError(
            f"{name} must be between {low} and {high}", code="invalid_parameter"
        )
    return value


# What a public route's handler receives: nobody, in no workspace.
ANONYMOUS = Principal(id="", workspace="")


class Router:
    """Dispatches a request to the route matching its method and path.

    A handler is called as ``handler(runtime, request, principal, **path_args)``.

    Args:
        routes: The routes served.
        runtime: Returns the runtime handlers receive (default: this instance's, built
            on the first request).
    """

    def __init__(self, routes: list[Route], runtime: Callable[[], Runtime] = get_runtime) -> None:
        self._runtime = runtime
        self._handlers: dict[str, Handler] = {}
        self._public: set[str] = set()
        self._audit: dict[str, str] = {}
        rules = []
        for index, route in enumerate(routes):
            endpoint = f"r{index}"
            self._handlers[endpoint] = route.handler
            if route.audit:
                self._audit[endpoint] = route.audit
            if route.public:
                self._public.add(endpoint)
            rules.append(Rule(route.path, methods=[route.method], endpoint=endpoint))
        self._map = Map(rules, strict_slashes=False)

    def __call__(self, request: Request) -> Response:
        """Handle ``request`` (CORS included); never raises."""
        origins = self._cors_origins()
        origin = allowed_origin(request, origins)
        if is_preflight(request):
            return self._preflight(request, origin)
        return add_cors_headers(self._handle(request), origin)

    def _cors_origins(self) -> list[str]:
        try:
            return list(self._runtime().settings.cors_origins)
        except Exception:  # no runtime (settings invalid): serve no origin
            log.exception("could not read cors_origins")
            return []

    def _preflight(self, request: Request, origin: str | None) -> Response:
        if origin is None:
            return error_response(403, "origin_not_allowed", "this origin may not call the API")
        adapter = self._map.bind_to_environ(request.environ)
        methods = set(adapter.allowed_methods()) - {"HEAD"}
        if not methods:
            # A preflight must succeed for the browser to send the request at all: let
            # the request through, so the page reads its 404 rather than a bare refusal.
            requested = request.headers["Access-Control-Request-Method"]
            if not (requested.isascii() and requested.isalpha()):
                return add_cors_headers(
                    error_response(400, "invalid_preflight", "no such request method"), origin
                )
            methods = {requested}
        return preflight_response(origin, methods | {"OPTIONS"})

    @staticmethod
    def _authenticate(runtime: Runtime, request: Request) -> Principal:
        with span("ragline.authenticate"):
            return authenticate(runtime, request)

    def _handle(self, request: Request) -> Response:
        request_id = audit.request_id_of(request)
        # Every log line of the request (its "request finished" line included) carries it.
        bind(request_id=request_id)
        context: audit.AuditContext | None = None
        runtime: Runtime | None = None
        try:
            adapter = self._map.bind_to_environ(request.environ)
            endpoint, args = adapter.match()
            action = self._audit.get(str(endpoint))
            if action:
                context = audit.start(request, action, args, request_id)
            runtime = self._runtime()
            check_request_text(request, args)
            response = self._dispatch(runtime, request, str(endpoint), args, context)
        except Exception as error:  # every failure becomes an error response
            response = render_error(request, error)
        if context is not None and runtime is not None:
            try:
                audit.finish(runtime.database, context, response.status_code)
            except Exception:
                log.exception("could not write the audit row of request %s", request_id)
        response.headers[audit.REQUEST_ID_HEADER] = request_id
        return response

    def _dispatch(
        self,
        runtime: Runtime,
        request: Request,
        endpoint: str,
        args: Mapping[str, Any],
        context: audit.AuditContext | None,
    ) -> Response:
        """Authenticate, count the request, then run the handler (audited if declared)."""
        principal = ANONYMOUS
        if endpoint not in self._public:
            principal = self._authenticate(runtime, request)
            limits = limits_of(runtime, principal.workspace)
            if context is not None:
                # A route naming a workspace acts on that one: its log holds the row.
                named = str(args.get("workspace") or principal.workspace)
                workspace_id = (
                    limits.workspace_id
                    if named == principal.workspace
                    else limits_of(runtime, named).workspace_id
                )
                context.identify(principal, named, workspace_id)
            check_request(runtime, principal, limits)
        bind(workspace=principal.workspace)
        handler = self._handlers[endpoint]
        if context is None:
            return handler(runtime, request, principal, **args)
        with audit.recording(context):
            return handler(runtime, request, principal, **args)


def render_error(request: Request, error: Exception) -> Response:
    """The API's response to an exception a request raised (500 for the unexpected)."""
    if isinstance(error, QuotaExceededError):
        return quota_response(error)
    if isinstance(error, DomainError):
        response = error_response(status_of(error), error.code, error.message)
        if isinstance(error, UnauthenticatedError):
            response.headers["WWW-Authenticate"] = bearer_challenge(error)
        return response
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        return error_response(400, "invalid_request", f"{where}: {first.get('msg')}")
    if isinstance(error, MethodNotAllowed):
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
    if isinstance(error, NotFound):
        return error_response(404, "not_found", f"no route for {request.method} {request.path}")
    if isinstance(error, HTTPException):
        return error_response(error.code or 500, "http_error", error.description or "error")
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "internal", "internal error; it has been logged")
