"""``mcp``: the MCP endpoint (``/mcp``) with Ragline's search, ask and document tools.

Its own function: the MCP SDK and its ASGI stack load here only, so the other
functions' cold starts do not pay for them.
"""

from __future__ import annotations

import flask
import functions_framework

from shared.api.mcp_server import McpEndpoint
from shared.invocation import http_target
from shared.log import configure_logging

configure_logging()
_endpoint = McpEndpoint()


@functions_framework.http
@http_target("mcp")
def mcp(request: flask.Request) -> flask.Response:
    """Authenticate the request and hand it to the MCP app."""
    return _endpoint(request)  # type: ignore[return-value]
