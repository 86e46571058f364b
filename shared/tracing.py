"""Tracing with the OpenTelemetry API: spans at the stage boundaries of an answer.

Product code only uses the API (``opentelemetry-api``). Without a tracer provider the
API is a no-op, and :func:`span` skips even the API's context switch then (a span
costs about a microsecond instead of several), so production pays next to nothing
until a deployment installs an SDK provider and an exporter (Cloud Trace, OTLP, ...)
with ``trace.set_tracer_provider`` (or ``OTEL_PYTHON_TRACER_PROVIDER``). Benchmarks and
tests install an SDK provider with an in-memory exporter and read the spans
(``scripts/bench/answer_overhead.py``, ``tests/integration/test_answer_tracing.py``).
Recording with the SDK costs tens of microseconds per span (an ask has about 25).

Stage spans nest under whatever span is current (an HTTP server span, when the
deployment instruments the framework); database statement spans nest under the stage
that ran them.

Span names are stable (dashboards, the benchmark and the tests rely on them); add new
ones, do not rename:

``ragline.authenticate``
    Turn the request's credential into a principal (``shared/api/authn.py``): token or
    key verification and the membership lookup.
``ragline.knowledge_bases.resolve``
    Resolve and authorise the knowledge bases a question names (``shared/api/answer.py``).
    Attribute ``ragline.knowledge_bases``: how many were named.
``ragline.history.read``
    Read a follow-up's session: ownership check and earlier exchanges, one query.
``ragline.rewrite``
    Rewrite a follow-up into a standalone query (the model call included).
``ragline.rewrite.model``
    The rewrite's chat completion (only with a model configured).
``ragline.retrieval``
    Hybrid retrieval, whole. Attributes ``ragline.top_k``, ``ragline.passages``.
``ragline.retrieval.scope``
    The embedding models (and knowledge bases) in scope. Attribute ``ragline.models``.
``ragline.retrieval.routing``
    Routing by the names a question mentions. Attribute ``ragline.routed``: how many
    documents the search was narrowed to (0: not routed).
``ragline.retrieval.search``
    Both arms for one embedding model: the scope's size, the query embedding and the
    hybrid statement. Attributes ``ragline.embedding_model``, ``ragline.candidates``.
``ragline.retrieval.embed``
    The query embedding (inside ``ragline.retrieval.search``).
``ragline.turn.start``
    Insert the turn (and a new session with it, for a first question).
``ragline.generation.prompt``
    ``generator.generate(...)``: the prompt built within its budget (OpenAI), or the
    whole answer composed (extractive). Attribute ``ragline.generator``.
``ragline.generation.stream``
    The answer's stream, from its first delta to its close. Attributes
    ``ragline.generator``, ``ragline.deltas`` and ``ragline.model_wait_ms``: the time
    spent waiting for the next delta (the model call, and the generator's own work per
    delta); the rest of the span is Ragline's (citation markers, events).
``ragline.citations``
    Check the answer's citations against the passages it was given.
``ragline.turn.finish``
    Store the answer (or a failed or cancelled turn).
``ragline.pipeline.parse``, ``.chunk``, ``.embed``, ``.index``
    One call of a pipeline step (``shared/pipeline/steps.py``). Attribute
    ``ragline.did_work``: False when there was nothing to do (a redelivery).
``ragline.embeddings.compute``
    The embedding model computing one batch (MiniLM's ``encode``, the hashing
    embedder's features), without tokenisation or I/O around it.
``ragline.function.<target>``
    One invocation of a function target (``shared/invocation.py``): a server span for
    HTTP targets, a consumer span for events. Its parent is the caller's span from the
    request's ``traceparent`` (or ``X-Cloud-Trace-Context``), the message's
    ``traceparent`` attribute or the event's extension, so every step of one document
    is one trace; every other span of the invocation is its descendant. Attribute
    ``faas.trigger`` (``http``, ``pubsub``, ``datasource``).
``ragline.db.statement``
    One statement on a database connection (``shared/db/connection.py``). Attributes:
    ``db.system.name`` (``postgresql``), ``db.operation.name`` (the statement's first
    keyword), ``ragline.db.protocol`` (``simple``: a query without parameters, one
    round trip; ``prepared``: a parameterised statement executed by name, one round
    trip, plus one when this execution prepared it; ``unnamed``: COPY with a stream,
    parse, describe and execute, three), ``ragline.db.prepared`` (True when this
    execution prepared the statement), ``ragline.db.round_trips`` (round trips to the
    server, a closed least-recently-used statement included).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from shared.trace_context import SpanRef

tracer = trace.get_tracer("ragline")
"""Ragline's tracer (a proxy: it follows a provider installed after import)."""

_NO_SPAN: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)


def enabled() -> bool:
    """Whether a tracer provider is installed (else every span is a no-op)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def span(name: str, **attributes: Any) -> AbstractContextManager[trace.Span]:
    """A span ``name`` (current for the ``with`` block) with ``attributes``.

    An exception leaving the block is recorded on the span, which ends in error.
    Without a tracer provider: a no-op (the span yielded records nothing).

    Args:
        name: One of the names in this module's docstring.
        **attributes: Attribute values (str, bool, int, float); keys are prefixed
            ``ragline.`` unless they contain a dot already.
    """
    if not enabled():
        return _NO_SPAN
    return tracer.start_as_current_span(name, attributes=_attributes(attributes))


def start_span(name: str, **attributes: Any) -> trace.Span:
    """Start a span that is not made current; the caller ends it (``span.end()``).

    For an interval that spans ``yield``s of a generator, where a current span would
    leak into the consumer's code.
    """
    if not enabled():
        return trace.INVALID_SPAN
    return tracer.start_span(name, attributes=_attributes(attributes))


def start_function_span(target: str, parent: SpanRef | None, *, trigger: str) -> trace.Span:
    """Start the span of one invocation of ``target``, continuing ``parent``'s trace.

    Not made current; the caller attaches it (:func:`attach`) and ends it. Without a
    tracer provider: an invalid span (the caller then draws its own span id).

    Args:
        target: The function target's name (``parse``, ``upload``, ...).
        parent: The caller's position in its trace, or None to start a trace.
        trigger: ``http`` (a server span), ``pubsub`` or ``datasource`` (consumer).
    """
    if not enabled():
        return trace.INVALID_SPAN
    context = None
    if parent is not None:
        remote = trace.SpanContext(
            trace_id=int(parent.trace_id, 16),
            span_id=int(parent.span_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(
                trace.TraceFlags.SAMPLED if parent.sampled else trace.TraceFlags.DEFAULT
            ),
        )
        context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    kind = trace.SpanKind.SERVER if trigger == "http" else trace.SpanKind.CONSUMER
    return tracer.start_span(
        f"ragline.function.{target}",
        context=context,
        kind=kind,
        attributes={"faas.trigger": trigger},
    )


def span_ref(current: trace.Span) -> SpanRef | None:
    """``current``'s position in its trace (None for an invalid span)."""
    context = current.get_span_context()
    if not context.is_valid:
        return None
    return SpanRef(
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        context.trace_flags.sampled,
    )


def attach(current: trace.Span) -> object:
    """Make ``current`` the current span; returns the token :func:`detach` takes."""
    return otel_context.attach(trace.set_span_in_context(current))


def detach(token: object) -> None:
    """Restore the current span :func:`attach` replaced."""
    otel_context.detach(token)  # type: ignore[arg-type]


def record_error(current: trace.Span, error: BaseException) -> None:
    """Record ``error`` on a span started with :func:`start_span` and mark it failed."""
    current.record_exception(error)
    current.set_status(trace.StatusCode.ERROR, type(error).__name__)


def _attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key if "." in key else f"ragline.{key}": value for key, value in attributes.items()}


P = ParamSpec("P")
R = TypeVar("R")


def traced_step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a pipeline step inside span ``name``, marking whether it did its work.

    Steps return False when there was nothing to do (a redelivered message); that is
    the span's ``ragline.did_work`` attribute.
    """

    def decorate(step: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(step)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(name) as current:
                result = step(*args, **kwargs)
                current.set_attribute("ragline.did_work", result is not False)
                return result

        return run

    return decorate
