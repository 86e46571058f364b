"""Structured logging: one JSON line per entry, the shape Cloud Logging parses.

Configured once per process; ``extra={"version_id": ...}`` fields become JSON keys.
Inside a function invocation (:mod:`shared.trace_context`) every line also carries the
trace (``logging.googleapis.com/trace``, ``.../spanId``, ``.../trace_sampled``, which
Cloud Logging uses to group a trace's lines), the function's name and the ids set for
the invocation; a record's own ``extra`` wins over an invocation id of the same name.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from shared import trace_context

# Extra fields (``extra={...}``) copied into the entry. The log-based metrics of
# infra/terraform/monitoring.tf read some of them: tests/integration/test_monitoring_logs.py
# checks each metric against real entries.
_CONTEXT_KEYS = (
    "version_id",
    "document_id",
    "kb_id",
    "step",
    "event_id",
    "task",
    "error",
    # An object the ingest function refused, and why.
    "bucket",
    "object_name",
    "generation",
    "reason",
    "recorded",
    # Failures, stage and answer timings, dead letters.
    "error_code",
    "outcome",
    "duration_ms",
    "attempts",
    "turn_id",
    "first_token_ms",
    "workspace",
    # A request log line (shared/invocation.py); Cloud Logging promotes it to the
    # entry's httpRequest.
    "httpRequest",
)
TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"
_configured = False


class JsonFormatter(logging.Formatter):
    """Formats a record as a Cloud Logging structured entry."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one JSON line."""
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        invocation = trace_context.current()
        if invocation is not None:
            entry[TRACE_FIELD] = invocation.trace_resource
            entry[SPAN_FIELD] = invocation.span.span_id
            entry[SAMPLED_FIELD] = invocation.span.sampled
            entry["function"] = invocation.function
            entry.update(invocation.ids)
        for key in _CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Send this process's logs to stderr as JSON lines (idempotent)."""
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _configured = True
