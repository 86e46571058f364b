"""Entry points of every Ragline function (one source zip, many targets).

Each target lives in its own module under ``functions/`` and is imported only when the
runtime asks for it (module ``__getattr__``), so an instance serving ``parse`` never
imports the code, or the libraries, of ``upload`` or ``embed``: cold starts matter.
"""

from __future__ import annotations

import importlib
from typing import Any

# target name -> module under functions/ that defines it
TARGETS: dict[str, str] = {
    "upload": "functions.upload",
    "ingest": "functions.ingest",
    "parse": "functions.parse",
    "chunk": "functions.chunk",
    "embed": "functions.embed",
    "index": "functions.index",
    "dead_letter": "functions.dead_letter",
    "manage": "functions.manage",
    "answer": "functions.answer",
    "sweep": "functions.sweep",
    "webhooks": "functions.webhooks",
    "deliver_webhook": "functions.deliver_webhook",
    "mcp": "functions.mcp",
    "sync": "functions.sync",
}


def __getattr__(name: str) -> Any:
    """Import the module of target ``name`` on first access and return its function."""
    module = TARGETS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    function = getattr(importlib.import_module(module), name)
    # The framework asks for the target inside its app context: its own errors (a path
    # its routing cannot match) then answer in the API's format, on every instance.
    from shared.invocation import framework_errors_as_json

    framework_errors_as_json()
    return function


def __dir__() -> list[str]:
    return sorted([*globals(), *TARGETS])
