"""The trace an invocation belongs to, and the ids its log lines carry.

One document's whole journey is one trace: the upload request (or the bucket event)
starts or continues a trace, and every message the pipeline publishes carries it on
(``traceparent``: a Pub/Sub attribute, a Cloud Tasks header), so each step continues
the same trace id with a span id of its own.

A function target sets the :class:`Invocation` once per call (``shared/invocation.py``),
like functions-framework's execution id; the JSON log formatter (``shared/log.py``)
reads it, and publishers read it with :func:`propagation`. A context variable holds it,
so concurrent requests on threads of one instance never see each other's.

Formats read: W3C ``traceparent`` (``00-<32 hex trace>-<16 hex span>-<2 hex flags>``)
and Google's ``X-Cloud-Trace-Context`` (``<32 hex trace>/<decimal span>;o=<0|1>``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

TRACEPARENT = "traceparent"
"""The W3C header, Pub/Sub attribute and CloudEvent extension carrying the trace."""
CLOUD_TRACE_HEADER = "X-Cloud-Trace-Context"
"""Google's own trace header (Cloud Run and the load balancer set it)."""

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


@dataclass(frozen=True)
class SpanRef:
    """A position in a trace: its trace id, a span id in it, and the sampling decision."""

    trace_id: str
    span_id: str
    sampled: bool

    def traceparent(self) -> str:
        """This position as a W3C ``traceparent`` value."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def new_trace_id() -> str:
    """A random 128-bit trace id (32 hex digits)."""
    return secrets.token_hex(16)


def new_span_id() -> str:
    """A random 64-bit span id (16 hex digits)."""
    return secrets.token_hex(8)


def parse_traceparent(value: str | None) -> SpanRef | None:
    """The position a W3C ``traceparent`` value names (None if absent or invalid)."""
    match = _TRACEPARENT.match((value or "").strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:
        return None
    return SpanRef(trace_id, span_id, sampled=bool(int(flags, 16) & 1))


def parse_cloud_trace_context(value: str | None) -> SpanRef | None:
    """The position an ``X-Cloud-Trace-Context`` value names (None if absent or invalid).

    Its span id is decimal; without one the caller's position is the trace's root.
    """
    match = _CLOUD_TRACE.match((value or "").strip())
    if match is None:
        return None
    trace_id, span, option = match.groups()
    trace_id = trace_id.lower()
    span_number = int(span) if span else 0
    if trace_id == _INVALID_TRACE or span_number >= 2**64:
        return None
    span_id = f"{span_number:016x}" if span_number else new_span_id()
    return SpanRef(trace_id, span_id, sampled=option == "1")


class Headers(Protocol):
    """Request headers, looked up case-insensitively (werkzeug's ``Headers``)."""

    def get(self, key: str) -> str | None:
        """The header's value, if present."""
        ...


def from_headers(headers: Headers) -> SpanRef | None:
    """The caller's position from request headers: ``traceparent`` first, then Google's."""
    found = parse_traceparent(headers.get(TRACEPARENT))
    return found or parse_cloud_trace_context(headers.get(CLOUD_TRACE_HEADER))


@dataclass
class Invocation:
    """One call of a function target: its trace position and the ids it is about.

    Attributes:
        function: The target's name (``upload``, ``parse``, ...).
        project: The Google Cloud project the trace belongs to.
        span: This invocation's own span (the trace id it continues, a new span id).
        parent_span_id: The caller's span, if the trace was continued.
        ids: Ids set for the invocation (``version_id``, ``workspace``, ...); every log
            line of the invocation carries them.
    """

    function: str
    project: str
    span: SpanRef
    parent_span_id: str | None = None
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def trace_resource(self) -> str:
        """The trace's resource name, as Cloud Logging's ``trace`` field wants it."""
        return f"projects/{self.project}/traces/{self.span.trace_id}"


_current: ContextVar[Invocation | None] = ContextVar("ragline_invocation", default=None)


def current() -> Invocation | None:
    """The invocation running in this context, if any."""
    return _current.get()


@contextmanager
def activated(invocation: Invocation) -> Iterator[Invocation]:
    """Make ``invocation`` current for the ``with`` block (restored after it)."""
    token = _current.set(invocation)
    try:
        yield invocation
    finally:
        _current.reset(token)


def bind(**ids: str | None) -> None:
    """Attach ids to the current invocation, so its later log lines carry them.

    None values are skipped; outside an invocation this does nothing.
    """
    invocation = _current.get()
    if invocation is None:
        return
    for key, value in ids.items():
        if value is not None and value != "":
            invocation.ids[key] = str(value)


def propagation() -> dict[str, str]:
    """What an outgoing message or task carries to continue this trace (may be empty)."""
    invocation = _current.get()
    if invocation is None:
        return {}
    return {TRACEPARENT: invocation.span.traceparent()}
