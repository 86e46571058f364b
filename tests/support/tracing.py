"""The product's spans, recorded in memory by an OpenTelemetry SDK tracer provider."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def span_recorder() -> InMemorySpanExporter:
    """The process's in-memory exporter (installed on first use), emptied.

    A process has one tracer provider: the first call installs an SDK provider unless
    one is there already, and adds the exporter to it; later calls only clear it.
    """
    global _exporter
    if _exporter is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    _exporter.clear()
    return _exporter


def ragline_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The product's finished spans, in the order they started."""
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("ragline.")]
    return sorted(spans, key=lambda s: s.start_time or 0)
