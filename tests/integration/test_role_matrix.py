"""The role matrix: every kind of caller against every route, one expected status each.

The expectations are written here from the role rules (``shared.auth``'s docstring and
the identity issue), not computed by product code:

- viewer reads, editor writes, admin manages (members, grants, keys, requests,
  settings, deletes), owner also manages owners; API keys act with their role in
  their workspace, but create neither workspaces nor keys;
- a limited member sees only the knowledge bases granted to them (a grant is all
  they have there); admins and owners see every knowledge base of their workspace;
- what the caller may not read answers 404, what they may read but not change 403,
  a workspace action their role does not allow 403, and another principal's sessions
  and turns 404.

:data:`ROUTES` has one entry per route: the rule deciding its status and how to call
it. A route the functions serve but the table lacks fails the test, so a new route
forces its entry.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.test import TestResponse

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of, token_for
from tests.support.outbound import allow_loopback
from tests.support.principals import Caller, api_key, invite, signed_in, workspace_owner
from tests.support.routes import route_keys
from tests.support.sources import SOURCE_BUCKET, source_bucket

LEVEL = {None: 0, "viewer": 1, "editor": 2, "admin": 3, "owner": 4}
GRANT_LEVEL = {None: 0, "read": 1, "write": 2}
READ, WRITE, ADMIN, OWNER = 1, 2, 3, 4
WORKSPACE = "default"
# Loopback is allow-listed for the test; the event never happens, so nothing is sent.
EVALUATION = {
    "questions": [{"question": "When do the tides rise?", "expected_sources": ["tides.txt"]}]
}
HOOK = {"url": "http://127.0.0.1:9/hook", "events": ["version.awaiting_approval"]}
# A paused source of an empty bucket prefix: creating it starts no run.
SOURCE = {"type": "gcs", "config": {"uri": f"gs://{SOURCE_BUCKET}/matrix/"}, "paused": True}
TEXT = "The lighthouse keeper logs the tides every morning. Tides rise twice a day."


def kb_level(caller: Caller, grant: str | None) -> int:
    """The caller's level on a knowledge base of the default workspace (the rule above)."""
    if caller.workspace != WORKSPACE:
        return 0
    level = LEVEL[caller.role]
    if level >= ADMIN:
        return level
    return max(0 if caller.limited else level, GRANT_LEVEL[grant])


@dataclass
class World:
    """What the calls act on, and what each caller owns or was granted."""

    stack: LocalStack
    owner: Api
    kb: dict[str, Any]
    document: dict[str, Any]
    chunk_id: int
    target: Caller
    webhook: str = ""
    source: str = ""
    evaluation: str = ""
    grants: dict[str, str] = field(default_factory=dict)
    turns: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def unique(self, prefix: str) -> str:
        """A name no earlier call used."""
        return f"{prefix}-{next(self.counter)}"

    def turn_of(self, caller: Caller) -> str:
        """The caller's own turn if they have one, else the owner's (not theirs)."""
        return self.turns.get(caller.name, self.turns["owner"])

    def session_of(self, caller: Caller) -> str:
        """The caller's own session if they have one, else the owner's (not theirs)."""
        return self.sessions.get(caller.name, self.sessions["owner"])

    def fresh_document(self) -> str:
        """A document of the knowledge base only the call at hand will use."""
        name = self.unique("doomed") + ".txt"
        response = self.owner.post(
            f"/v1/knowledge-bases/{self.kb['id']}/documents",
            data={"file": (io.BytesIO(TEXT.encode()), name)},
        )
        assert response.status_code == 202, response.get_data(as_text=True)
        return str(body_of(response)["document_id"])

    def fresh_webhook(self) -> str:
        """A webhook of the knowledge base only the call at hand will use."""
        response = self.owner.post(f"/v1/knowledge-bases/{self.kb['id']}/webhooks", json=HOOK)
        assert response.status_code == 201, response.get_data(as_text=True)
        return str(body_of(response)["id"])

    def fresh_source(self) -> str:
        """A paused source of the knowledge base only the call at hand will use."""
        response = self.owner.post(f"/v1/knowledge-bases/{self.kb['id']}/sources", json=SOURCE)
        assert response.status_code == 201, response.get_data(as_text=True)
        return str(body_of(response)["id"])

    def fresh_member(self) -> str:
        """A member only the call at hand will use."""
        return invite(self.owner, self.stack, WORKSPACE, self.unique("leaver"), "viewer").id

    def fresh_key(self) -> str:
        """An API key only the call at hand will use."""
        return api_key(self.owner, self.stack, WORKSPACE, self.unique("k"), "viewer").id[4:]

    def pending_request(self) -> str:
        """A pending access request on the knowledge base (the target asks)."""
        response = self.target.api.post(
            f"/v1/knowledge-bases/{self.kb['id']}/access-requests", json={"access": "read"}
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return str(body_of(response)["id"])


# --- the rules: what status a caller gets --------------------------------------------

Rule = Callable[[World, Caller], int]


def public(world: World, caller: Caller) -> int:
    """Anyone, even without a credential."""
    return 200


def signed_in_rule(keys_refused: bool = False) -> Rule:
    """Any authenticated caller (API keys refused if ``keys_refused``)."""

    def rule(world: World, caller: Caller) -> int:
        return 403 if keys_refused and caller.is_key else 200

    return rule


def acting_workspace(level: int) -> Rule:
    """The caller's role in the workspace the request acts in must reach ``level``."""

    def rule(world: World, caller: Caller) -> int:
        return 200 if LEVEL[caller.role] >= level else 403

    return rule


def workspace_path(level: int, keys_refused: bool = False) -> Rule:
    """A route naming the default workspace: non-members 404, lower roles 403."""

    def rule(world: World, caller: Caller) -> int:
        if caller.workspace != WORKSPACE:
            return 404
        if LEVEL[caller.role] < level or (keys_refused and caller.is_key):
            return 403
        return 200

    return rule


def on_kb(level: int) -> Rule:
    """An action on the knowledge base (or its documents) needing ``level`` there."""

    def rule(world: World, caller: Caller) -> int:
        mine = kb_level(caller, world.grants.get(caller.name))
        if mine == 0:
            return 404
        return 403 if mine < level else 200

    return rule


def allowed_then(rule: Rule, status: int) -> Rule:
    """``rule``, but a caller it allows gets ``status`` (the call cannot succeed for anyone)."""

    def wrapped(world: World, caller: Caller) -> int:
        verdict = rule(world, caller)
        return status if verdict == 200 else verdict

    return wrapped


def on_new_kb(level: int) -> Rule:
    """An action needing ``level`` on a knowledge base made for the call (nobody's grant)."""

    def rule(world: World, caller: Caller) -> int:
        mine = kb_level(caller, None)
        if mine == 0:
            return 404
        return 403 if mine < level else 200

    return rule


def kb_member(world: World, caller: Caller) -> int:
    """Any member of the knowledge base's workspace, limited or not (access requests)."""
    return 200 if caller.workspace == WORKSPACE and caller.role else 404


def role_then(level: int, rule: Rule) -> Rule:
    """The caller's role in the workspace it acts in must reach ``level`` (403), then ``rule``."""

    def checked(world: World, caller: Caller) -> int:
        return 403 if LEVEL[caller.role] < level else rule(world, caller)

    return checked


def own_history(world: World, caller: Caller) -> int:
    """The caller's own turn or session; callers without one try the owner's: 404."""
    return 200 if caller.name in world.turns else 404


# --- the calls -------------------------------------------------------------------------

Call = Callable[[World, Caller], TestResponse]


def _ask_body(world: World) -> dict[str, Any]:
    return {"knowledge_base_ids": [world.kb["id"]], "question": "When do the tides rise?"}


def _consumed(response: TestResponse) -> TestResponse:
    response.get_data()  # a stream runs to its end
    return response


def _unarchive_fresh(world: World, caller: Caller) -> TestResponse:
    """Unarchive a document the owner archived for this call."""
    document = world.fresh_document()
    archived = world.owner.post(f"/v1/documents/{document}/archive")
    assert archived.status_code == 200, archived.get_data(as_text=True)
    return caller.api.post(f"/v1/documents/{document}/unarchive")


@dataclass(frozen=True)
class Entry:
    """How a route is called and the rule that says what it answers."""

    rule: Rule
    call: Call


KB = "/v1/knowledge-bases/<kb_id>"
DOC = "/v1/documents/<document_id>"
WS = "/v1/workspaces/<workspace>"
TURN = "/v1/turns/<turn_id>"
HOOKS = "/v1/knowledge-bases/<kb_id>/webhooks/<webhook_id>"
SOURCES = "/v1/sources/<source_id>"

ROUTES: dict[str, Entry] = {
    "GET /healthz": Entry(public, lambda w, c: c.api.get("/healthz")),
    "GET /v1/openapi.json": Entry(public, lambda w, c: c.api.get("/v1/openapi.json")),
    "GET /v1/docs": Entry(public, lambda w, c: c.api.get("/v1/docs")),
    "GET /v1/docs/<asset>": Entry(public, lambda w, c: c.api.get("/v1/docs/swagger-ui.css")),
    "GET /v1/me": Entry(signed_in_rule(), lambda w, c: c.api.get("/v1/me")),
    "POST /v1/stream-tickets": Entry(
        signed_in_rule(),
        lambda w, c: c.api.post("/v1/stream-tickets", json={"path": "/v1/ask/stream"}),
    ),
    "POST /v1/workspaces": Entry(
        signed_in_rule(keys_refused=True),
        lambda w, c: c.api.post("/v1/workspaces", json={"name": w.unique("ws")}),
    ),
    "GET /v1/workspaces": Entry(signed_in_rule(), lambda w, c: c.api.get("/v1/workspaces")),
    "GET /v1/sessions": Entry(signed_in_rule(), lambda w, c: c.api.get("/v1/sessions")),
    "GET /v1/knowledge-bases": Entry(
        signed_in_rule(), lambda w, c: c.api.get("/v1/knowledge-bases")
    ),
    "POST /v1/knowledge-bases": Entry(
        acting_workspace(ADMIN),
        lambda w, c: c.api.post("/v1/knowledge-bases", json={"name": w.unique("kb")}),
    ),
    f"PATCH {KB}": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.patch(f"/v1/knowledge-bases/{w.kb['id']}", json={"description": "d"}),
    ),
    f"GET {KB}/documents": Entry(
        on_kb(READ), lambda w, c: c.api.get(f"/v1/knowledge-bases/{w.kb['id']}/documents")
    ),
    f"POST {KB}/documents": Entry(
        on_kb(WRITE),
        lambda w, c: c.api.post(
            f"/v1/knowledge-bases/{w.kb['id']}/documents",
            data={"file": (io.BytesIO(TEXT.encode()), w.unique("up") + ".txt")},
        ),
    ),
    f"POST {KB}/uploads": Entry(
        on_kb(WRITE),
        lambda w, c: c.api.post(
            f"/v1/knowledge-bases/{w.kb['id']}/uploads",
            json={
                "filename": w.unique("big") + ".pdf",
                "content_type": "application/pdf",
                "size": 1000,
            },
        ),
    ),
    f"GET {KB}/grants": Entry(
        on_kb(ADMIN), lambda w, c: c.api.get(f"/v1/knowledge-bases/{w.kb['id']}/grants")
    ),
    f"PUT {KB}/grants/<member>": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.put(
            f"/v1/knowledge-bases/{w.kb['id']}/grants/{w.target.id}", json={"access": "read"}
        ),
    ),
    f"DELETE {KB}/grants/<member>": Entry(
        on_kb(ADMIN),
        lambda w, c: (
            w.owner.put(
                f"/v1/knowledge-bases/{w.kb['id']}/grants/{w.target.id}", json={"access": "read"}
            ),
            c.api.delete(f"/v1/knowledge-bases/{w.kb['id']}/grants/{w.target.id}"),
        )[1],
    ),
    f"POST {KB}/access-requests": Entry(
        kb_member,
        lambda w, c: c.api.post(
            f"/v1/knowledge-bases/{w.kb['id']}/access-requests", json={"access": "write"}
        ),
    ),
    f"GET {DOC}": Entry(on_kb(READ), lambda w, c: c.api.get(f"/v1/documents/{w.document['id']}")),
    f"GET {DOC}/events": Entry(
        on_kb(READ),
        lambda w, c: _consumed(c.api.get(f"/v1/documents/{w.document['id']}/events?timeout=5")),
    ),
    f"PATCH {DOC}": Entry(
        on_kb(WRITE),
        lambda w, c: c.api.patch(
            f"/v1/documents/{w.document['id']}", json={"title": w.unique("title")}
        ),
    ),
    # Nothing awaits approval in this knowledge base: whoever may approve gets 409.
    f"POST {DOC}/approve": Entry(
        allowed_then(on_kb(WRITE), 409),
        lambda w, c: c.api.post(f"/v1/documents/{w.document['id']}/approve"),
    ),
    f"POST {DOC}/archive": Entry(
        on_kb(WRITE), lambda w, c: c.api.post(f"/v1/documents/{w.fresh_document()}/archive")
    ),
    f"POST {DOC}/unarchive": Entry(on_kb(WRITE), lambda w, c: _unarchive_fresh(w, c)),
    f"GET {DOC}/file": Entry(
        on_kb(READ), lambda w, c: c.api.get(f"/v1/documents/{w.document['id']}/file")
    ),
    f"DELETE {KB}": Entry(
        on_new_kb(ADMIN),
        lambda w, c: c.api.delete(
            f"/v1/knowledge-bases/{w.owner.create_kb(w.unique('gone'))['id']}"
        ),
    ),
    # The default workspace cannot be deleted: its owners get 409, everyone else less.
    f"DELETE {WS}": Entry(
        allowed_then(workspace_path(OWNER), 409),
        lambda w, c: c.api.delete(f"/v1/workspaces/{WORKSPACE}"),
    ),
    f"GET {WS}/ingest-rejections": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.get(f"/v1/workspaces/{WORKSPACE}/ingest-rejections"),
    ),
    f"POST {KB}/webhooks": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.post(f"/v1/knowledge-bases/{w.kb['id']}/webhooks", json=HOOK),
    ),
    f"GET {KB}/webhooks": Entry(
        on_kb(ADMIN), lambda w, c: c.api.get(f"/v1/knowledge-bases/{w.kb['id']}/webhooks")
    ),
    f"GET {HOOKS}": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.get(f"/v1/knowledge-bases/{w.kb['id']}/webhooks/{w.webhook}"),
    ),
    f"PATCH {HOOKS}": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.patch(
            f"/v1/knowledge-bases/{w.kb['id']}/webhooks/{w.webhook}", json={"enabled": True}
        ),
    ),
    f"DELETE {HOOKS}": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.delete(f"/v1/knowledge-bases/{w.kb['id']}/webhooks/{w.fresh_webhook()}"),
    ),
    "GET /v1/webhooks/<webhook_id>/deliveries": Entry(
        on_kb(ADMIN), lambda w, c: c.api.get(f"/v1/webhooks/{w.webhook}/deliveries")
    ),
    f"POST {KB}/sources": Entry(
        on_kb(WRITE),
        lambda w, c: c.api.post(f"/v1/knowledge-bases/{w.kb['id']}/sources", json=SOURCE),
    ),
    f"GET {KB}/sources": Entry(
        on_kb(READ), lambda w, c: c.api.get(f"/v1/knowledge-bases/{w.kb['id']}/sources")
    ),
    f"GET {SOURCES}": Entry(on_kb(READ), lambda w, c: c.api.get(f"/v1/sources/{w.source}")),
    f"PATCH {SOURCES}": Entry(
        on_kb(WRITE), lambda w, c: c.api.patch(f"/v1/sources/{w.source}", json={"paused": True})
    ),
    f"DELETE {SOURCES}": Entry(
        on_kb(ADMIN), lambda w, c: c.api.delete(f"/v1/sources/{w.fresh_source()}")
    ),
    f"POST {SOURCES}/sync": Entry(
        on_kb(WRITE), lambda w, c: c.api.post(f"/v1/sources/{w.source}/sync")
    ),
    f"POST {KB}/evaluations": Entry(
        on_kb(WRITE),
        lambda w, c: c.api.post(f"/v1/knowledge-bases/{w.kb['id']}/evaluations", json=EVALUATION),
    ),
    f"GET {KB}/evaluations": Entry(
        on_kb(READ), lambda w, c: c.api.get(f"/v1/knowledge-bases/{w.kb['id']}/evaluations")
    ),
    "GET /v1/evaluations/<run_id>": Entry(
        on_kb(READ), lambda w, c: c.api.get(f"/v1/evaluations/{w.evaluation}")
    ),
    "GET /v1/evaluations/<run_id>/compare/<other_id>": Entry(
        on_kb(READ),
        lambda w, c: c.api.get(f"/v1/evaluations/{w.evaluation}/compare/{w.evaluation}"),
    ),
    f"POST {DOC}/reindex": Entry(
        on_kb(WRITE), lambda w, c: c.api.post(f"/v1/documents/{w.document['id']}/reindex")
    ),
    f"DELETE {DOC}": Entry(
        on_kb(ADMIN), lambda w, c: c.api.delete(f"/v1/documents/{w.fresh_document()}")
    ),
    "POST /v1/ask": Entry(on_kb(READ), lambda w, c: c.api.post("/v1/ask", json=_ask_body(w))),
    "GET /v1/ask/stream": Entry(
        on_kb(READ),
        lambda w, c: _consumed(
            c.api.get(
                "/v1/ask/stream", query_string={"knowledge_base_id": w.kb["id"], "q": "tides"}
            )
        ),
    ),
    "POST /v1/retrieve": Entry(
        on_kb(READ), lambda w, c: c.api.post("/v1/retrieve", json=_ask_body(w))
    ),
    "GET /v1/openai/models": Entry(signed_in_rule(), lambda w, c: c.api.get("/v1/openai/models")),
    "GET /v1/openai/models/<model>": Entry(
        on_kb(READ), lambda w, c: c.api.get(f"/v1/openai/models/{w.kb['id']}")
    ),
    "POST /v1/openai/chat/completions": Entry(
        on_kb(READ),
        lambda w, c: c.api.post(
            "/v1/openai/chat/completions",
            json={"model": w.kb["id"], "messages": [{"role": "user", "content": "tides?"}]},
        ),
    ),
    "GET /v1/citations/<chunk_id>/viewer": Entry(
        on_kb(READ), lambda w, c: c.api.get(f"/v1/citations/{w.chunk_id}/viewer")
    ),
    f"POST {TURN}/regenerate": Entry(
        own_history, lambda w, c: c.api.post(f"/v1/turns/{w.turn_of(c)}/regenerate")
    ),
    f"POST {TURN}/feedback": Entry(
        own_history,
        lambda w, c: c.api.post(f"/v1/turns/{w.turn_of(c)}/feedback", json={"rating": "up"}),
    ),
    f"GET {TURN}/citations": Entry(
        own_history, lambda w, c: c.api.get(f"/v1/turns/{w.turn_of(c)}/citations")
    ),
    "GET /v1/sessions/<session_id>/turns": Entry(
        own_history, lambda w, c: c.api.get(f"/v1/sessions/{w.session_of(c)}/turns")
    ),
    f"PATCH {WS}": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.patch(f"/v1/workspaces/{WORKSPACE}", json={"name": WORKSPACE}),
    ),
    f"GET {WS}/members": Entry(
        workspace_path(ADMIN), lambda w, c: c.api.get(f"/v1/workspaces/{WORKSPACE}/members")
    ),
    f"POST {WS}/members": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.post(
            f"/v1/workspaces/{WORKSPACE}/members",
            json={"email": w.unique("invitee") + "@example.org", "role": "viewer"},
        ),
    ),
    f"PATCH {WS}/members/<member>": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.patch(
            f"/v1/workspaces/{WORKSPACE}/members/{w.target.id}", json={"role": "viewer"}
        ),
    ),
    f"DELETE {WS}/members/<member>": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.delete(f"/v1/workspaces/{WORKSPACE}/members/{w.fresh_member()}"),
    ),
    f"POST {WS}/api-keys": Entry(
        workspace_path(ADMIN, keys_refused=True),
        lambda w, c: c.api.post(
            f"/v1/workspaces/{WORKSPACE}/api-keys", json={"name": "k", "role": "viewer"}
        ),
    ),
    f"GET {WS}/api-keys": Entry(
        workspace_path(ADMIN), lambda w, c: c.api.get(f"/v1/workspaces/{WORKSPACE}/api-keys")
    ),
    f"DELETE {WS}/api-keys/<key_id>": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.delete(f"/v1/workspaces/{WORKSPACE}/api-keys/{w.fresh_key()}"),
    ),
    f"GET {WS}/access-requests": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.get(f"/v1/workspaces/{WORKSPACE}/access-requests"),
    ),
    "GET /v1/analytics/overview": Entry(
        role_then(ADMIN, on_kb(READ)),
        lambda w, c: c.api.get(
            "/v1/analytics/overview", query_string={"knowledge_base_id": w.kb["id"]}
        ),
    ),
    "GET /v1/analytics/me": Entry(
        role_then(READ, on_kb(READ)),
        lambda w, c: c.api.get("/v1/analytics/me", query_string={"knowledge_base_id": w.kb["id"]}),
    ),
    "GET /v1/analytics/feedback": Entry(
        acting_workspace(ADMIN), lambda w, c: c.api.get("/v1/analytics/feedback")
    ),
    f"GET {WS}/limits": Entry(
        workspace_path(READ), lambda w, c: c.api.get(f"/v1/workspaces/{WORKSPACE}/limits")
    ),
    # Every limit back to its default: the calls after it are not limited by it.
    f"PUT {WS}/limits": Entry(
        workspace_path(ADMIN),
        lambda w, c: c.api.put(f"/v1/workspaces/{WORKSPACE}/limits", json={}),
    ),
    "GET /v1/audit-logs": Entry(acting_workspace(ADMIN), lambda w, c: c.api.get("/v1/audit-logs")),
    "POST /v1/access-requests/<request_id>/approve": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.post(f"/v1/access-requests/{w.pending_request()}/approve"),
    ),
    "POST /v1/access-requests/<request_id>/deny": Entry(
        on_kb(ADMIN),
        lambda w, c: c.api.post(f"/v1/access-requests/{w.pending_request()}/deny"),
    ),
}


def served_routes() -> set[str]:
    """``METHOD path`` of every route of every HTTP function."""
    return route_keys()


def test_the_matrix_names_every_route() -> None:
    served = served_routes()
    assert not served - ROUTES.keys(), f"routes without a matrix entry: {served - ROUTES.keys()}"
    assert not ROUTES.keys() - served, f"entries for no route: {ROUTES.keys() - served}"


def _callers(stack: LocalStack, owner: Api) -> list[Caller]:
    me = body_of(owner.get("/v1/me"))
    return [
        Caller("owner", owner, me["principal"]["id"], WORKSPACE, "owner"),
        invite(owner, stack, WORKSPACE, "ada", "admin"),
        invite(owner, stack, WORKSPACE, "ed", "editor"),
        invite(owner, stack, WORKSPACE, "vera", "viewer"),
        invite(owner, stack, WORKSPACE, "lim-granted", "viewer", limited=True),
        invite(owner, stack, WORKSPACE, "lim-none", "viewer", limited=True),
        invite(owner, stack, WORKSPACE, "led", "editor", limited=True),
        api_key(owner, stack, WORKSPACE, "key-admin", "admin"),
        api_key(owner, stack, WORKSPACE, "key-editor", "editor"),
        api_key(owner, stack, WORKSPACE, "key-viewer", "viewer"),
        signed_in(stack, "stranger"),
        workspace_owner(stack, "olga", "elsewhere"),
    ]


@pytest.fixture
def world(clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> tuple[World, list[Caller]]:
    """One knowledge base with a ready document and a webhook, every kind of caller."""
    stack = clean_stack
    allow_loopback(stack, monkeypatch)
    source_bucket(stack, monkeypatch)
    owner = Api(stack)
    kb = owner.create_kb("matrix")
    document = owner.ingest(kb["id"], "tides.txt", TEXT.encode())
    assert document["status"] == "ready", document
    callers = _callers(stack, owner)
    target = invite(owner, stack, WORKSPACE, "tina", "viewer", limited=True)
    retrieved = body_of(
        owner.post("/v1/retrieve", json={"knowledge_base_ids": [kb["id"]], "question": "tides"})
    )
    world = World(stack, owner, kb, document, retrieved["passages"][0]["chunk_id"], target)
    world.webhook = world.fresh_webhook()
    world.source = world.fresh_source()
    evaluated = owner.post(f"/v1/knowledge-bases/{kb['id']}/evaluations", json=EVALUATION)
    assert evaluated.status_code == 201, evaluated.get_data(as_text=True)
    world.evaluation = body_of(evaluated)["id"]
    # The grants: read for one limited viewer, write for the limited editor.
    for name, access in (("lim-granted", "read"), ("led", "write")):
        caller = next(c for c in callers if c.name == name)
        granted = owner.put(
            f"/v1/knowledge-bases/{kb['id']}/grants/{caller.id}", json={"access": access}
        )
        assert granted.status_code == 200, granted.get_data(as_text=True)
        world.grants[name] = access
    # Everyone who can read the knowledge base has a turn and a session of their own.
    for caller in callers:
        asked = caller.api.post("/v1/ask", json=_ask_body(world))
        if asked.status_code == 200:
            world.turns[caller.name] = body_of(asked)["turn_id"]
            world.sessions[caller.name] = body_of(asked)["session_id"]
    assert "owner" in world.turns
    return world, callers


def _status_class(status: int) -> int:
    return 200 if 200 <= status < 300 else status


def test_every_caller_gets_the_expected_status_on_every_route(
    world: tuple[World, list[Caller]],
) -> None:
    state, callers = world
    wrong: list[str] = []
    for route, entry in sorted(ROUTES.items()):
        for caller in callers:
            expected = entry.rule(state, caller)
            response = entry.call(state, caller)
            got = _status_class(response.status_code)
            if got != expected:
                wrong.append(
                    f"{route:55} {caller.name:12} expected {expected} got"
                    f" {response.status_code} {response.get_data(as_text=True)[:120]}"
                )
    state.stack.wait_idle(180)
    assert not wrong, "\n" + "\n".join(wrong)


def test_an_unknown_id_answers_404_to_everyone_who_could_otherwise_act(
    clean_stack: LocalStack,
) -> None:
    # The owner naming nothing that exists: 404 everywhere, never 403 or 500.
    owner = Api(clean_stack)
    missing = "00000000-0000-4000-8000-000000000000"
    for path in (
        f"/v1/documents/{missing}",
        f"/v1/knowledge-bases/{missing}/documents",
        f"/v1/sessions/{missing}/turns",
        f"/v1/turns/{missing}/citations",
        "/v1/citations/999999999/viewer",
    ):
        assert owner.get(path).status_code == 404, path
    other = Api(clean_stack, token_for(clean_stack, "nobody"))
    assert other.get(f"/v1/documents/{missing}").status_code == 404
