"""The audit log's request side: who did what, recorded once per audited request.

A route that changes something, answers a question or retrieves declares its action
(``Route(..., audit="document.delete")``). For such a request the Router binds an
:class:`AuditContext` (actor, credential, target ids from the path, request id, trace
id, client address, user agent) with :func:`recording`, which installs a commit hook
(``shared.db.commit_hooks``): the first transaction of the request that changes a row
appends the audit row before it commits, so the record and the change commit or roll
back together (outcome ``succeeded``; ``status`` is null there, since the response is
not written yet; the request's ``request finished`` log line, which carries the same
``request_id``, has it). A request
that changed nothing in a transaction (refused: 401, 403, 404, 429, invalid input; a
retrieval; a change made by a single autocommit statement) gets its row from
:func:`finish` after the handler, in its own statement, with its status. Either way
exactly one row per request.

Handlers may add what the path does not name (:func:`note`): the knowledge bases a
question searched, the name of what a create makes.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request

from shared.auth import Principal
from shared.db import Database, Session
from shared.db.commit_hooks import before_commit
from shared.store import audit as store
from shared.trace_context import current

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is kept when it is short and plain, else a new one is drawn.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MAX_USER_AGENT = 512
_DENIED = frozenset({401, 403, 404, 429})


def _clean(text: str, limit: int = 256) -> str:
    """``text`` as PostgreSQL stores it: no NUL, no lone surrogate, at most ``limit``.

    A refused request's row keeps what it sent (a path segment the text rule refuses,
    say), made storable.
    """
    storable = text[:limit].encode("utf-8", "replace").decode("utf-8")
    return storable.replace("\x00", "\ufffd")


def request_id_of(request: Request) -> str:
    """The request's id: the caller's ``X-Request-Id`` if plain, else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def client_address(request: Request) -> str:
    """The client's address as Google's load balancer reports it.

    The load balancer appends ``<client>, <load balancer>`` to any ``X-Forwarded-For``
    the client sent, so the second-to-last hop is the one a client cannot forge; with
    a single hop (no load balancer, the local stack) it is that one, else the peer.
    """
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    hops = [hop for hop in hops if hop]
    if len(hops) >= 2:
        return hops[-2]
    if hops:
        return hops[0]
    return request.remote_addr or ""


@dataclass
class AuditContext:
    """One audited request: everything its row says but the outcome.

    Attributes:
        written: True once the row is appended (by the commit hook or :func:`finish`).
    """

    action: str
    target_kind: str
    target_ids: list[str]
    request_id: str
    trace_id: str
    client_address: str
    user_agent: str
    workspace: str = ""
    workspace_id: str | None = None
    actor: str = ""
    credential_kind: str = "none"
    credential_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    written: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def identify(self, principal: Principal, workspace: str, workspace_id: str | None) -> None:
        """Record who is calling (once authenticated) and the workspace acted on."""
        self.workspace = workspace
        self.workspace_id = workspace_id
        if workspace != principal.workspace:
            self.details["acting_workspace"] = principal.workspace
        self.actor = principal.id
        self.credential_kind = principal.credential
        self.credential_id = principal.credential_id

    def entry(self, outcome: str, status: int | None) -> store.AuditEntry:
        """The row to append."""
        return store.AuditEntry(
            workspace_id=self.workspace_id,
            workspace=_clean(self.workspace),
            actor=_clean(self.actor),
            credential_kind=self.credential_kind,
            credential_id=_clean(self.credential_id),
            action=self.action,
            target_kind=self.target_kind,
            target_ids=list(dict.fromkeys(_clean(target) for target in self.target_ids)),
            outcome=outcome,
            status=status,
            request_id=self.request_id,
            trace_id=self.trace_id,
            client_address=_clean(self.client_address, 64),
            user_agent=_clean(self.user_agent, _MAX_USER_AGENT),
            details={key: _clean(str(value)) for key, value in self.details.items()},
        )

    def on_commit(self, session: Session) -> None:
        """The commit hook: append the row in the first transaction that changed a row."""
        with self.lock:
            if self.written or self.closed:
                return
            self.written = store.append_if_wrote(session, self.entry("succeeded", None))

    def pending(self) -> bool:
        """True until the row is written (or the request is over)."""
        return not (self.written or self.closed)


_context: ContextVar[AuditContext | None] = ContextVar("ragline_audit", default=None)


def start(
    request: Request, action: str, path_args: Mapping[str, Any], request_id: str
) -> AuditContext:
    """The context of an audited request, before authentication.

    The target kind is the action's noun (``document`` of ``document.delete``), the
    target ids the path's values in order (a knowledge base and a member, say).
    """
    invocation = current()
    return AuditContext(
        action=action,
        target_kind=action.split(".", 1)[0],
        target_ids=[str(value) for value in path_args.values()],
        request_id=request_id,
        trace_id=invocation.span.trace_id if invocation else "",
        client_address=client_address(request),
        user_agent=request.headers.get("User-Agent") or "",
    )


@contextlib.contextmanager
def recording(context: AuditContext) -> Iterator[AuditContext]:
    """Make ``context`` the request's, and write its row with the change (commit hook)."""
    token = _context.set(context)
    try:
        with before_commit(context.on_commit, pending=context.pending):
            yield context
    finally:
        _context.reset(token)
        with context.lock:
            context.closed = True


def note(*, targets: Sequence[str] = (), **details: Any) -> None:
    """Add target ids or details to the current request's row (before it is written).

    Does nothing outside an audited request, so any entry point may call it.
    """
    context = _context.get()
    if context is None:
        return
    with context.lock:
        context.target_ids.extend(str(target) for target in targets)
        context.details.update(details)


def outcome_of(status: int) -> str:
    """``succeeded`` below 400, ``denied`` for 401/403/404/429, else ``failed``."""
    if status < 400:
        return "succeeded"
    return "denied" if status in _DENIED else "failed"


def finish(database: Database, context: AuditContext, status: int) -> None:
    """Append the request's row now unless its change already did (exactly one row)."""
    with context.lock:
        if context.written:
            return
        context.written = True
    store.append(database, context.entry(outcome_of(status), status))
