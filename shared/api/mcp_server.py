"""The MCP endpoint (``/mcp``): Ragline's tools over MCP's streamable HTTP transport.

Built with the official ``mcp`` SDK (``MCPServer``), in *stateless* mode with JSON
responses: every POST carries one JSON-RPC message and gets its answer as one JSON
body, so any instance can serve any request (a function's instances share no memory,
and nothing holds a stream open). Tools: ``list_knowledge_bases``, ``search``, ``ask``,
``get_document`` (``shared.api.mcp_tools``).

Authentication is the HTTP API's: the request's ``Authorization: Bearer`` (an ID
token or an API key) and ``X-Ragline-Workspace`` go through
:func:`shared.api.authn.authenticate` before the MCP app sees the request; without a
valid credential the answer is a 401 with ``WWW-Authenticate``. The principal reaches
the tools in a context variable. DNS-rebinding protection (checking ``Host`` and
``Origin``) is off: it guards servers that trust whoever reaches them, and every call
here needs a bearer credential that a rebinding page does not have.

The functions run on functions-framework's WSGI (Flask) server, and the SDK's
transport is an ASGI app: ``a2wsgi`` runs it on one event loop per instance, in a
background thread, where the SDK's session manager also runs (it must, to serve
requests). The WSGI side stays what every other function uses: the same
``http_target`` wrapper (trace context, request log), the same local-stack mount.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar

from a2wsgi import ASGIMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from werkzeug.wrappers import Request, Response

from shared import trace_context
from shared.api import audit, mcp_tools
from shared.api.authn import authenticate
from shared.api.http import check_request_text, error_response, render_error
from shared.api.quotas import check_request, limits_of
from shared.auth import Principal
from shared.errors import DomainError
from shared.runtime import Runtime, get_runtime

MCP_PATH = "/mcp"
INSTRUCTIONS = (
    "Ragline answers questions from the documents of your knowledge bases, with "
    "citations. list_knowledge_bases shows what you can read; search returns ranked "
    "passages; ask returns a grounded answer whose [n] markers point at its citations; "
    "get_document reads a document's text in windows."
)
# Where the authenticated caller travels from the WSGI request to the ASGI app.
log = logging.getLogger(__name__)

_PRINCIPAL_KEY = "ragline.principal"
_INVOCATION_KEY = "ragline.invocation"
_AUDIT_KEY = "ragline.audit"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Result = TypeVar("Result")

_principal: ContextVar[Principal | None] = ContextVar("ragline_mcp_principal", default=None)

KnowledgeBaseRefs = Annotated[
    list[str] | None,
    Field(description="knowledge base ids or names; default: every one you can read"),
]


def _call(tool: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    """Run a tool as the request's principal; domain errors become tool errors.

    Unexpected errors stay on the server (the SDK logs them and answers a generic
    failure).
    """
    principal = _principal.get()
    if principal is None:  # the endpoint authenticates first: this is a wiring error
        raise RuntimeError("no principal for the MCP call")
    try:
        return tool(get_runtime(), principal, *args, **kwargs)
    except DomainError as error:
        raise ToolError(f"{error.code}: {error.message}") from None


def build_server() -> MCPServer:
    """The MCP server with Ragline's four tools."""
    server: MCPServer = MCPServer("ragline", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(description="The knowledge bases you can read (id, name, description).")
    def list_knowledge_bases() -> mcp_tools.KnowledgeBases:
        return _call(mcp_tools.list_knowledge_bases)

    @server.tool(
        description="Ranked passages for a query (hybrid search), best first, with their "
        "document, page, score and a snippet."
    )
    def search(
        query: Annotated[str, Field(description="what to look for")],
        knowledge_base_ids: KnowledgeBaseRefs = None,
        top_k: Annotated[int | None, Field(description="how many passages (1-50)")] = None,
    ) -> mcp_tools.SearchResult:
        return _call(mcp_tools.search, query, knowledge_base_ids, top_k)

    @server.tool(
        description="A grounded answer from the documents: text with [n] markers and the "
        "citations they point at (document, page, snippet)."
    )
    def ask(
        question: Annotated[str, Field(description="the question")],
        knowledge_base_ids: KnowledgeBaseRefs = None,
    ) -> mcp_tools.Answer:
        return _call(mcp_tools.ask, question, knowledge_base_ids)

    @server.tool(
        description="A document's detail and a window of its text; read on from next_offset."
    )
    def get_document(
        document_id: Annotated[str, Field(description="the document's id")],
        offset: Annotated[int, Field(description="first character of the window")] = 0,
        max_chars: Annotated[
            int, Field(description=f"window size, at most {mcp_tools.MAX_DOCUMENT_CHARS}")
        ] = mcp_tools.DEFAULT_DOCUMENT_CHARS,
    ) -> mcp_tools.DocumentText:
        return _call(mcp_tools.get_document, document_id, offset, max_chars)

    return server


def _as_caller(app: AsgiApp) -> AsgiApp:
    """Wrap the MCP app so its tools run as the principal the WSGI side authenticated.

    A tool call's audit context is recorded around the app too: the row is appended in
    the first transaction the tool's work commits (a question's turn), as for any other
    audited request, and the WSGI side writes it only if the tool changed nothing.
    """

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        environ = scope.get("wsgi_environ") or {}
        principal = environ.get(_PRINCIPAL_KEY)
        if not isinstance(principal, Principal):
            raise RuntimeError("the MCP app was reached without authentication")
        invocation = environ.get(_INVOCATION_KEY)
        context = environ.get(_AUDIT_KEY)
        _principal.set(principal)
        with contextlib.ExitStack() as stack:
            if isinstance(invocation, trace_context.Invocation):
                stack.enter_context(trace_context.activated(invocation))
            if isinstance(context, audit.AuditContext):
                stack.enter_context(audit.recording(context))
            await app(scope, receive, send)

    return serve


class McpEndpoint:
    """The ``/mcp`` endpoint of one instance: authentication, then the MCP app.

    The SDK's app and its event loop start on the first request (cold starts of the
    other functions never import the SDK; this one pays it once).

    Args:
        runtime: Returns the runtime (default: this instance's).
    """

    def __init__(self, runtime: Callable[[], Runtime] = get_runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._wsgi: ASGIMiddleware | None = None

    def _app(self) -> ASGIMiddleware:
        with self._lock:
            if self._wsgi is None:
                self._wsgi = self._start()
            return self._wsgi

    @staticmethod
    def _start() -> ASGIMiddleware:
        server = build_server()
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="mcp-loop", daemon=True).start()
        running = threading.Event()

        async def run_sessions() -> None:
            # The session manager serves requests only inside run(), for the instance's life.
            async with server.session_manager.run():
                running.set()
                await asyncio.Event().wait()

        asyncio.run_coroutine_threadsafe(run_sessions(), loop)
        if not running.wait(timeout=30):
            raise RuntimeError("the MCP session manager did not start")
        return ASGIMiddleware(_as_caller(app), loop=loop)  # type: ignore[arg-type]

    def __call__(self, request: Request) -> Response:
        """Serve one request to ``/mcp`` (401 without a valid credential).

        Only POST: a stateless server sends nothing of its own, so it offers no GET
        stream (which would stay open, holding a worker, until the timeout) and no
        session to DELETE; MCP's answer to both is 405.
        """
        if request.method != "POST":
            response = error_response(
                405, "method_not_allowed", "the MCP endpoint takes POST (stateless, no streams)"
            )
            response.headers["Allow"] = "POST"
            return response
        try:
            check_request_text(request, {})
            runtime = self._runtime()
            principal = authenticate(runtime, request)
            limits = limits_of(runtime, principal.workspace)
            check_request(runtime, principal, limits)
        except DomainError as error:
            return render_error(request, error)
        trace_context.bind(workspace=principal.workspace)
        context = _tool_call_audit(request, principal, limits.workspace_id)
        # The body is read through the request (functions-framework reads it again after
        # the function returns); the MCP app gets its own copy of it.
        body = request.get_data(cache=True)
        environ = {
            **request.environ,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            _PRINCIPAL_KEY: principal,
            _INVOCATION_KEY: trace_context.current(),
            _AUDIT_KEY: context,
        }
        response = Response.from_app(self._app(), environ, buffered=True)  # type: ignore[arg-type]
        if context is not None:
            try:
                audit.finish(runtime.database, context, response.status_code)
            except Exception:
                log.exception("could not write the audit row of request %s", context.request_id)
            response.headers[audit.REQUEST_ID_HEADER] = context.request_id
        return response


def _tool_call_audit(
    request: Request, principal: Principal, workspace_id: str | None
) -> audit.AuditContext | None:
    """The audit context of a ``tools/call`` request (``mcp.<tool>``); None for the rest.

    Listing tools and the handshake change and read nothing, so like other reads of
    metadata they leave no row; every search, question and document read does.
    """
    try:
        message = json.loads(request.get_data(cache=True))
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return None
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    tool = str(params.get("name") or "unknown")
    arguments = params.get("arguments")
    arguments = arguments if isinstance(arguments, dict) else {}
    targets = arguments.get("knowledge_base_ids") or []
    if arguments.get("document_id"):
        targets = [arguments["document_id"]]
    action = "mcp." + "".join(c if c.isalnum() or c == "_" else "_" for c in tool.lower())[:64]
    context = audit.start(request, action, {}, audit.request_id_of(request))
    context.identify(principal, principal.workspace, workspace_id)
    if isinstance(targets, list):
        context.target_ids.extend(str(target) for target in targets[:10])
    return context
