"""Capturing the JSON log entries the functions write, as Cloud Logging would get them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.log import JsonFormatter, configure_logging


class _Entries(logging.Handler):
    """Keeps every record as the JSON entry a function would write for it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(self.format(record)))


@contextmanager
def captured_entries() -> Iterator[list[dict[str, Any]]]:
    """Every log entry written (at INFO and above) while the block runs."""
    # Configured first, as every function module does on import: it replaces the root
    # handlers once, and must not drop the capturing handler later.
    configure_logging()
    root = logging.getLogger()
    capture = _Entries()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    try:
        yield capture.entries
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
