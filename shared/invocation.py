"""One invocation of a function target: its trace, its ids, its request log line.

Every target is wrapped by :func:`http_target` or :func:`event_target`, which set the
invocation's :class:`~shared.trace_context.Invocation` once per call (read by every
log line and by every publisher), start its span when traces are exported, and flush
the export before the function returns.

Where the caller's trace comes from:

- HTTP requests (Cloud Tasks pushes included): ``traceparent``, else
  ``X-Cloud-Trace-Context``;
- Pub/Sub pushes: the message's ``traceparent`` attribute;
- Eventarc CloudEvents: their ``traceparent`` extension; a GCS event without one, the
  object's ``traceparent`` metadata (the upload function writes it), so an upload and
  its bucket event are one trace;
- otherwise a new trace starts.

An HTTP target writes one ``request finished`` line per request with Cloud Logging's
``httpRequest`` (INFO below 500, ERROR from 500); a streamed response (SSE) writes it,
and ends its invocation, when the stream closes.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import flask
from werkzeug.exceptions import HTTPException

from shared import trace_context, trace_export, tracing
from shared.runtime import get_runtime
from shared.trace_context import Invocation, SpanRef

log = logging.getLogger(__name__)

HttpFunction = Callable[[flask.Request], Any]
EventFunction = Callable[[Any], None]

# Query parameters never logged: stream tickets and anything named like a credential.
_SECRET_PARAMETER = re.compile(
    r"ticket|token|key|secret|passw|signature|sig$|credential|auth|code$", re.I
)
# Pub/Sub attributes (shared.models.message_attributes) a log line carries, by log name.
_MESSAGE_IDS = {
    "version_id": "version_id",
    "document_id": "document_id",
    "knowledge_base_id": "kb_id",
}


class _Call:
    """The invocation in progress: made current around each piece of its work."""

    def __init__(self, target: str, parent: SpanRef | None, trigger: str) -> None:
        project = ""
        try:
            settings = get_runtime().settings
            project = settings.project
            trace_export.configure(settings)
        except Exception:  # settings invalid: the function reports that itself
            log.exception("could not read the settings for tracing")
        self.span = tracing.start_function_span(target, parent, trigger=trigger)
        own = tracing.span_ref(self.span)
        if own is None:
            own = SpanRef(
                parent.trace_id if parent else trace_context.new_trace_id(),
                trace_context.new_span_id(),
                parent.sampled if parent else False,
            )
        self.invocation = Invocation(
            function=target,
            project=project,
            span=own,
            parent_span_id=parent.span_id if parent else None,
        )

    @contextmanager
    def active(self) -> Iterator[Invocation]:
        """Make the invocation (and its span) current for the ``with`` block."""
        token = tracing.attach(self.span)
        try:
            with trace_context.activated(self.invocation) as invocation:
                yield invocation
        finally:
            tracing.detach(token)

    def finish(self, error: BaseException | None = None) -> None:
        """End the invocation's span and flush the trace export."""
        if error is not None:
            tracing.record_error(self.span, error)
        self.span.end()
        trace_export.flush()


def framework_errors_as_json() -> None:
    """Have the framework answer its own HTTP errors in the API's error format.

    functions-framework routes every path to the function through ``/<path:path>``,
    whose pattern matches no line break: a path with one in a segment (``%0A``) got the
    framework's HTML 404 before any of our code ran. Called while the framework loads
    the target (its app context is active); a no-op anywhere else.
    """
    if flask.has_app_context():
        flask.current_app.register_error_handler(HTTPException, _framework_error)


def _framework_error(error: HTTPException) -> flask.Response:
    status = error.code or 500
    request = flask.request
    body = {
        "error": {
            "code": "not_found" if status == 404 else "http_error",
            "message": f"no route for {request.method} {request.path}",
        }
    }
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")


def http_target(target: str) -> Callable[[HttpFunction], Callable[[flask.Request], flask.Response]]:
    """Wrap the HTTP function ``target``: trace context, request log line, flush.

    Args:
        target: The function's name, as its log lines and spans carry it.
    """

    def decorate(function: HttpFunction) -> Callable[[flask.Request], flask.Response]:
        @functools.wraps(function)
        def run(request: flask.Request) -> flask.Response:
            call = _Call(target, trace_context.from_headers(request.headers), "http")
            started = time.monotonic()
            try:
                with call.active():
                    response = flask.make_response(function(request))
            except BaseException as error:
                # The framework answers 500 for it (Cloud Tasks and Pub/Sub retry).
                with call.active():
                    _log_request(request, 500, started, None)
                call.finish(error)
                raise
            if response.is_streamed:
                response.response = _WatchedStream(
                    response.response, call, request, (response.status_code, started)
                )
                return response
            with call.active():
                _log_request(request, response.status_code, started, response.content_length)
            call.finish()
            return response

        return run

    return decorate


class _WatchedStream:
    """A streamed body that runs inside its invocation and logs the request at close."""

    def __init__(
        self,
        body: Iterable[bytes] | Iterable[str],
        call: _Call,
        request: flask.Request,
        status_started: tuple[int, float],
    ) -> None:
        self._body = body
        self._chunks: Iterator[bytes | str] = iter(body)
        self._call = call
        self._request = request
        self._status, self._started = status_started
        self._size = 0
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        with self._call.active():
            chunk = next(self._chunks)
        data = chunk.encode() if isinstance(chunk, str) else chunk
        self._size += len(data)
        return data

    def close(self) -> None:
        """Close the body (its generator's cleanup runs in the invocation), then log."""
        if self._closed:
            return
        self._closed = True
        with self._call.active():
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
            _log_request(self._request, self._status, self._started, self._size)
        self._call.finish()


def _log_request(request: flask.Request, status: int, started: float, size: int | None) -> None:
    latency = time.monotonic() - started
    entry: dict[str, Any] = {
        "requestMethod": request.method,
        "requestUrl": request_url(request),
        "status": status,
        "latency": f"{latency:.3f}s",
        "userAgent": request.headers.get("User-Agent", ""),
        "remoteIp": remote_ip(request),
        "protocol": request.environ.get("SERVER_PROTOCOL", ""),
    }
    if size is not None:
        entry["responseSize"] = str(size)
    level = logging.ERROR if status >= 500 else logging.INFO
    log.log(level, "request finished", extra={"httpRequest": entry})


def request_url(request: flask.Request) -> str:
    """The request's path and query, without stream tickets or credential-like parameters."""
    kept = [
        (name, value)
        for name, value in request.args.items(multi=True)
        if not _SECRET_PARAMETER.search(name)
    ]
    return f"{request.path}?{urlencode(kept)}" if kept else request.path


def remote_ip(request: flask.Request) -> str:
    """The client's address: the first ``X-Forwarded-For`` hop (the load balancer's view)."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    first = forwarded.split(",")[0].strip()
    return first or request.remote_addr or ""


def event_target(target: str) -> Callable[[EventFunction], EventFunction]:
    """Wrap the CloudEvent function ``target``: trace context from the event, flush.

    Args:
        target: The function's name, as its log lines and spans carry it.
    """

    def decorate(function: EventFunction) -> EventFunction:
        @functools.wraps(function)
        def run(cloud_event: Any) -> None:
            data = _event_data(cloud_event)
            attributes = _message_attributes(data)
            parent = (
                trace_context.parse_traceparent(attributes.get(trace_context.TRACEPARENT))
                or trace_context.parse_traceparent(_extension(cloud_event))
                or trace_context.parse_traceparent(_object_metadata(data))
            )
            trigger = "pubsub" if "message" in data else "datasource"
            call = _Call(target, parent, trigger)
            try:
                with call.active():
                    trace_context.bind(
                        **{name: attributes.get(key) for key, name in _MESSAGE_IDS.items()}
                    )
                    function(cloud_event)
            except BaseException as error:
                call.finish(error)
                raise
            call.finish()

        return run

    return decorate


def _event_data(cloud_event: Any) -> dict[str, Any]:
    data: Any = getattr(cloud_event, "data", None)
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            return {}
    return data if isinstance(data, dict) else {}


def _message_attributes(data: dict[str, Any]) -> dict[str, str]:
    message = data.get("message")
    attributes = message.get("attributes") if isinstance(message, dict) else None
    return {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}


def _extension(cloud_event: Any) -> str | None:
    try:
        value = cloud_event.get(trace_context.TRACEPARENT)
    except (AttributeError, TypeError):
        return None
    return str(value) if value else None


def _object_metadata(data: dict[str, Any]) -> str | None:
    metadata = data.get("metadata")
    value = metadata.get(trace_context.TRACEPARENT) if isinstance(metadata, dict) else None
    return str(value) if value else None
