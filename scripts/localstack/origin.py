"""One origin for every HTTP function, routed by path like the production load balancer.

The path map mirrors infra/terraform's URL map: upload paths go to ``upload``, task
deliveries to ``embed``, and everything else to ``manage``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule

# Path patterns in the order the load balancer matches them; first match wins.
PATH_MAP: list[tuple[str, str]] = [
    ("/v1/knowledge-bases/<kb_id>/documents", "upload"),
    ("/v1/knowledge-bases/<kb_id>/uploads", "upload"),
    ("/v1/knowledge-bases/<kb_id>/evaluations", "answer"),
    ("/v1/evaluations/<path:rest>", "answer"),
    ("/internal/tasks/embed", "embed"),
    ("/v1/ask", "answer"),
    ("/v1/ask/stream", "answer"),
    ("/v1/retrieve", "answer"),
    ("/v1/sessions", "answer"),
    ("/v1/sessions/<path:rest>", "answer"),
    ("/v1/turns/<path:rest>", "answer"),
    ("/v1/citations/<path:rest>", "answer"),
    ("/v1/openai/<path:rest>", "answer"),
    ("/mcp", "mcp"),
    ("/healthz", "manage"),
    ("/v1/<path:rest>", "manage"),
    ("/v1", "manage"),
]


class OneOrigin:
    """A WSGI app dispatching to the functions' apps by path."""

    def __init__(self, apps: dict[str, Any], extra: list[tuple[str, str]] | None = None) -> None:
        self._apps = apps
        rules = [Rule(path, endpoint=target) for path, target in [*(extra or []), *PATH_MAP]]
        self._map = Map(rules, strict_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Serve one request."""
        try:
            target, _args = self._map.bind_to_environ(environ).match()
        except NotFound:
            body = json.dumps({"error": {"code": "not_found", "message": "no such path"}}).encode()
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [body]
        except Exception:  # werkzeug redirects and method errors
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": {"code": "not_found", "message": "no such path"}}']
        return self._apps[str(target)](environ, start_response)
