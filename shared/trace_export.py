"""Optional export of the product's spans (Cloud Trace or OTLP), flushed per invocation.

Off unless ``RAGLINE_TRACE_EXPORT`` names an exporter and its package is installed:
``cloudtrace`` needs ``opentelemetry-exporter-gcp-trace``, ``otlp`` needs
``opentelemetry-exporter-otlp-proto-http`` (configured by the standard
``OTEL_EXPORTER_OTLP_*`` variables); both need ``opentelemetry-sdk``. None of them is in
``requirements.txt``: a deployment that wants traces adds them, and one that turns the
setting on without them logs a warning once and runs untraced.

The SDK provider is installed once per instance, and :func:`flush` runs before a
function returns: a serverless instance may be frozen (or stopped) right after
answering, so a span left in the batch queue would be lost.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from opentelemetry import trace

from shared.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

#: Milliseconds :func:`flush` waits for the exporter before the function returns anyway.
FLUSH_TIMEOUT_MS = 5_000

_lock = threading.Lock()
_configured = False
_provider: TracerProvider | None = None


def configure(settings: Settings) -> bool:
    """Install the exporter ``settings.trace_export`` names, once per instance.

    Returns:
        True if spans are exported (now or by an earlier call).
    """
    global _configured
    with _lock:
        if _configured:
            return _provider is not None
        _configured = True
        if not settings.trace_export:
            return False
        try:
            exporter = _exporter(settings)
        except ImportError as error:
            log.warning(
                "RAGLINE_TRACE_EXPORT=%s but its exporter is not installed (%s): no traces",
                settings.trace_export,
                error,
            )
            return False
    install_exporter(exporter)
    return True


def _exporter(settings: Settings) -> SpanExporter:
    # Imported only when turned on: the SDK and exporters are not deployed by default.
    if settings.trace_export == "cloudtrace":
        from opentelemetry.exporter.cloud_trace import (
            CloudTraceSpanExporter,
        )

        exporter: SpanExporter = CloudTraceSpanExporter(project_id=settings.project)
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    otlp: SpanExporter = OTLPSpanExporter()
    return otlp


def install_exporter(exporter: SpanExporter) -> TracerProvider:
    """Export every span to ``exporter`` in batches, flushed by :func:`flush`.

    Uses the process's SDK tracer provider if one is installed already (a process has
    one), else installs one.

    Returns:
        The provider the exporter was added to.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    global _provider
    with _lock:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _provider = provider
    return provider


def flush() -> None:
    """Hand every finished span to the exporter now (no-op when nothing is exported)."""
    provider = _provider
    if provider is not None and not provider.force_flush(FLUSH_TIMEOUT_MS):
        log.warning("trace export did not finish within %d ms", FLUSH_TIMEOUT_MS)
