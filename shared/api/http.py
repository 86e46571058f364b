"""HTTP plumbing shared by the HTTP functions: routing, JSON, errors, auth hook.

Errors always render as ``{"error": {"code", "message"}}`` with the right status; an
unexpected exception is logged and becomes a 500 with no internals leaked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from shared.api import audit
from shared.api.authn import authenticate
from shared.api.cors import add_cors_headers, allowed_origin, is_preflight, preflight_response
from shared.api.quotas import check_request, limits_of, remembered
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
# Renders an error (status, code, message) in a route's own format.
ErrorFormat = Callable[[int, str, str], Response]

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
class Content:
    """A response body that is not a JSON model: a stream, a page or a file.

    Attributes:
        media_types: The media types the body may have (one, but for static assets).
        description: What the body holds, for the API reference.
        binary: The body is bytes (a file), not text.
        item: The model of each item of a stream (a server-sent event).
    """

    media_types: tuple[str, ...]
    description: str
    binary: bool = False
    item: type[BaseModel] | None = None


class ServerSentEvent(BaseModel):
    """One event of a ``text/event-stream`` response (OpenAPI 3.1: the schema of each)."""

    event: str | None = Field(None, description="The event's name (message when absent).")
    data: str | None = Field(None, description="One JSON object.")
    id: str | None = Field(None, description="Send back as Last-Event-ID to resume after it.")
    retry: int | None = Field(None, description="Milliseconds to wait before reconnecting.")


# Server-sent events: each event's ``data`` is one JSON object.
EVENT_STREAM = Content(
    ("text/event-stream",), "server-sent events (each data is JSON)", item=ServerSentEvent
)

# What a route answers with a status: a JSON model, another content, or no body (204).
ResponseBody = type[BaseModel] | Content | None


@dataclass(frozen=True)
class Route:
    """One API route: method, werkzeug path pattern, handler, and what it exchanges.

    Every route requires an authenticated principal unless it is ``public``. The
    models are what the handler validates and sends; the OpenAPI document
    (:mod:`shared.api.openapi`) is generated from them.

    Attributes:
        method: The HTTP method.
        path: The werkzeug path pattern (``/v1/documents/<document_id>``).
        handler: Called as ``handler(runtime, request, principal, **path_args)``.
        public: No principal needed.
        body: The request body's model, if the route takes one.
        body_media_type: How the body is sent (``multipart/form-data`` for files).
        query: The query parameters' model (read with :func:`read_query`).
        headers: The request headers' model (read with :func:`read_headers`; by alias).
        responses: Success status -> body (a model, a :class:`Content`, or None).
        stream: Sent instead of the success status's JSON body when the client's
            ``Accept`` asks for it (an answer as server-sent events).
        summary: One line for the API reference (default: the handler's docstring's first).
        tags: The API reference's groups.
        operation_id: Unique name of the operation (default: the handler's name).
        errors: Error statuses beyond the ones every route may answer (409, 413, 429).
        error_format: Renders the route's errors when it must speak another API's error
            shape (the OpenAI-compatible routes); else the API's own.
        audit: The audit action (``noun.verb``, the noun being the kind of its path's
            target) of a route that changes something, answers or retrieves: each
            request to it leaves exactly one audit row (:mod:`shared.api.audit`).
    """

    method: str
    path: str
    handler: Handler
    public: bool = False
    body: type[BaseModel] | None = None
    body_media_type: str = "application/json"
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    responses: Mapping[int, ResponseBody] = field(default_factory=dict)
    stream: Content | None = None
    summary: str = ""
    tags: tuple[str, ...] = ()
    operation_id: str = ""
    errors: frozenset[int] = frozenset()
    error_format: ErrorFormat | None = None
    audit: str | None = None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(
        json.dumps(body, default=str), status=status, mimetype="application/json", headers=headers
    )


M = TypeVar("M", bound=BaseModel)


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine code and a message for people."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response (any 4xx or 5xx)."""

    error: ErrorDetail


class Reply(BaseModel):
    """Base of the response models: the fields they name are checked and documented.

    Extra fields pass through untouched, so a model that names less than a handler
    sends never drops data.
    """

    model_config = ConfigDict(extra="allow")


def model_response(
    model: type[BaseModel], body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response shaped by ``model`` (the schema the API reference shows).

    Raises:
        RuntimeError: ``body`` does not fit the model: the handler and its declared
            response drifted apart (a 500, logged; never a 400 blamed on the client).
    """
    try:
        shaped = model.model_validate(body)
    except ValidationError as error:
        raise RuntimeError(f"response does not fit {model.__name__}: {error}") from error
    # Only the fields the body has: a field with a default is documented as optional.
    return json_response(shaped.model_dump(mode="json", exclude_unset=True), status, headers)


def instance_response(
    body: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response of a response model the handler built (validated when built)."""
    return json_response(body.model_dump(mode="json"), status, headers)


def error_response(status: int, code: str, message: str) -> Response:
    """An error in the API's format (:class:`ErrorBody`)."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return json_response(body.model_dump(mode="json"), status)


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


def read_query(request: Request, model: type[M]) -> M:
    """The query parameters validated by ``model`` (400 ``invalid_parameter`` otherwise).

    An empty value counts as absent (the default applies); a list field takes every
    value of a repeated parameter. Parameters the model does not name are ignored.
    """
    return _validated(request.args.getlist, model)


def read_headers(request: Request, model: type[M]) -> M:
    """The request headers ``model`` names (by alias), validated as :func:`read_query`."""
    return _validated(request.headers.getlist, model)


def _validated(values_of: Callable[[str], list[str]], model: type[M]) -> M:
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        given = [value for value in values_of(key) if value != ""]
        if given:
            values[key] = given if _is_list(info.annotation) else given[0]
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "parameter"
        raise InvalidInputError(f"{where}: {first.get('msg')}", code="invalid_parameter") from None


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(get_origin(arg) is list for arg in get_args(annotation))


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
        self._error_formats: dict[str, ErrorFormat] = {}
        self._audit: dict[str, str] = {}
        rules = []
        for index, route in enumerate(routes):
            endpoint = f"r{index}"
            self._handlers[endpoint] = route.handler
            if route.audit:
                self._audit[endpoint] = route.audit
            if route.public:
                self._public.add(endpoint)
            if route.error_format is not None:
                self._error_formats[endpoint] = route.error_format
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
        error_format: ErrorFormat = error_response
        try:
            adapter = self._map.bind_to_environ(request.environ)
            endpoint, args = adapter.match()
            error_format = self._error_formats.get(str(endpoint), error_response)
            action = self._audit.get(str(endpoint))
            if action:
                context = audit.start(request, action, args, request_id)
            runtime = self._runtime()
            check_request_text(request, args)
            with remembered():  # the request's limits, read once
                response = self._dispatch(runtime, request, str(endpoint), args, context)
        except Exception as error:  # every failure becomes an error response
            response = render_error(request, error, error_format)
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


def render_error(
    request: Request, error: Exception, error_format: ErrorFormat = error_response
) -> Response:
    """The response to an exception a request raised (500 for the unexpected).

    Errors a route raised are rendered in its ``error_format``; the router's own (no
    such route or method) always in the API's.
    """
    if isinstance(error, QuotaExceededError):
        if error_format is error_response:
            return quota_response(error)
        response = error_format(status_of(error), error.code, error.message)
        if error.retry_after_s is not None:
            response.headers["Retry-After"] = str(error.retry_after_s)
        return response
    if isinstance(error, DomainError):
        response = error_format(status_of(error), error.code, error.message)
        if isinstance(error, UnauthenticatedError):
            response.headers["WWW-Authenticate"] = bearer_challenge(error)
        return response
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        return error_format(400, "invalid_request", f"{where}: {first.get('msg')}")
    if isinstance(error, MethodNotAllowed):
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
    if isinstance(error, NotFound):
        return error_response(404, "not_found", f"no route for {request.method} {request.path}")
    if isinstance(error, HTTPException):
        return error_response(error.code or 500, "http_error", error.description or "error")
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return error_format(500, "internal", "internal error; it has been logged")
