"""The audit log: one row per audited request, written with the change, append-only.

Random mutations (a seeded mix of routes, callers and targets, refused ones included)
each leave exactly one row naming the right actor, credential, action and target; the
row of a change commits in the change's own transaction; nobody, the functions' role
included, can change or remove a row; admins read their workspace's log filtered,
paged and exported.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.test import TestResponse

from scripts.localstack.stack import LocalStack
from shared.api.http import Route
from shared.log import JsonFormatter
from tests.support.api import Api, body_of
from tests.support.principals import Caller, api_key, invite
from tests.support.routes import ALL_ROUTES

WORKSPACE = "default"
SEED = int(os.environ.get("RAGLINE_AUDIT_SEED") or random.randrange(1 << 30))
TEXT = b"The lighthouse keeper logs the tides every morning."
PATH_ARG = re.compile(r"<(\w+)>")


def rows_of(stack: LocalStack, request_id: str) -> list[dict[str, Any]]:
    """The audit rows of one request, as JSON objects."""
    found = stack.database.run(
        "SELECT row_to_json(a)::text FROM audit_log a WHERE request_id = :r", r=request_id
    )
    return [json.loads(text) for (text,) in found]


def call(caller: Caller, method: str, path: str, request_id: str, **kwargs: Any) -> TestResponse:
    """``method path`` as ``caller`` with its own request id."""
    headers = {
        **caller.api.headers,
        "X-Request-Id": request_id,
        "User-Agent": "audit-test/1",
        **kwargs.pop("headers", {}),
    }
    return caller.api.client.open(path, method=method, headers=headers, **kwargs)


@dataclass
class Scene:
    """What the random mutations act on."""

    stack: LocalStack
    owner: Caller
    callers: list[Caller]
    kb: dict[str, Any]
    rng: random.Random

    def document(self) -> str:
        response = self.owner.api.post(
            f"/v1/knowledge-bases/{self.kb['id']}/documents",
            data={"file": (io.BytesIO(TEXT), f"doc-{uuid.uuid4().hex[:6]}.txt")},
        )
        assert response.status_code == 202, response.get_data(as_text=True)
        return str(body_of(response)["document_id"])

    def member(self) -> str:
        name = f"m{uuid.uuid4().hex[:8]}"
        return invite(self.owner.api, self.stack, WORKSPACE, name, "viewer").id

    def key(self) -> str:
        return api_key(self.owner.api, self.stack, WORKSPACE, "k", "viewer").id[4:]


# One random mutation: (method, path, keyword arguments, action, target ids).
Mutation = tuple[str, str, dict[str, Any], str, list[str]]


def _patch_kb(s: Scene) -> Mutation:
    kb = s.kb["id"]
    body = {"description": f"d{s.rng.random()}"}
    return "PATCH", f"/v1/knowledge-bases/{kb}", {"json": body}, "knowledge_base.update", [kb]


def _patch_document(s: Scene) -> Mutation:
    doc = s.document()
    body = {"json": {"title": "Tides"}}
    return "PATCH", f"/v1/documents/{doc}", body, "document.update", [doc]


def _archive(s: Scene) -> Mutation:
    doc = s.document()
    return "POST", f"/v1/documents/{doc}/archive", {}, "document.archive", [doc]


def _delete_document(s: Scene) -> Mutation:
    doc = s.document()
    return "DELETE", f"/v1/documents/{doc}", {}, "document.delete", [doc]


def _upload(s: Scene) -> Mutation:
    kb = s.kb["id"]
    form = {"file": (io.BytesIO(TEXT), "up.txt")}
    return "POST", f"/v1/knowledge-bases/{kb}/documents", {"data": form}, "document.upload", [kb]


def _grant(s: Scene) -> Mutation:
    kb, member = s.kb["id"], s.member()
    path = f"/v1/knowledge-bases/{kb}/grants/{member}"
    return "PUT", path, {"json": {"access": "read"}}, "grant.put", [kb, member]


def _remove_member(s: Scene) -> Mutation:
    member = s.member()
    path = f"/v1/workspaces/{WORKSPACE}/members/{member}"
    return "DELETE", path, {}, "member.remove", [WORKSPACE, member]


def _revoke_key(s: Scene) -> Mutation:
    key = s.key()
    path = f"/v1/workspaces/{WORKSPACE}/api-keys/{key}"
    return "DELETE", path, {}, "api_key.revoke", [WORKSPACE, key]


def _limits(s: Scene) -> Mutation:
    path = f"/v1/workspaces/{WORKSPACE}/limits"
    body = {"json": {"questions_per_day": s.rng.randrange(100, 1000)}}
    return "PUT", path, body, "limits.update", [WORKSPACE]


def _ask(s: Scene) -> Mutation:
    kb = s.kb["id"]
    body = {"json": {"knowledge_base_ids": [kb], "question": "When do the tides rise?"}}
    return "POST", "/v1/ask", body, "knowledge_base.ask", [kb]


def _retrieve(s: Scene) -> Mutation:
    kb = s.kb["id"]
    body = {"json": {"knowledge_base_ids": [kb], "query": "tides"}}
    return "POST", "/v1/retrieve", body, "knowledge_base.retrieve", [kb]


def _create_kb(s: Scene) -> Mutation:
    body = {"json": {"name": f"kb-{uuid.uuid4().hex[:8]}"}}
    return "POST", "/v1/knowledge-bases", body, "knowledge_base.create", []


def _create_workspace(s: Scene) -> Mutation:
    name = f"ws-{uuid.uuid4().hex[:8]}"
    return "POST", "/v1/workspaces", {"json": {"name": name}}, "workspace.create", [name]


MUTATIONS: list[Callable[[Scene], Mutation]] = [
    _patch_kb,
    _patch_document,
    _archive,
    _delete_document,
    _upload,
    _grant,
    _remove_member,
    _revoke_key,
    _limits,
    _ask,
    _retrieve,
    _create_kb,
    _create_workspace,
]


@pytest.fixture
def scene(clean_stack: LocalStack) -> Scene:
    owner_api = Api(clean_stack)
    me = body_of(owner_api.get("/v1/me"))
    owner = Caller("owner", owner_api, me["principal"]["id"], WORKSPACE, "owner")
    callers = [
        owner,
        invite(owner_api, clean_stack, WORKSPACE, "audit-admin", "admin"),
        invite(owner_api, clean_stack, WORKSPACE, "audit-editor", "editor"),
        invite(owner_api, clean_stack, WORKSPACE, "audit-viewer", "viewer"),
        api_key(owner_api, clean_stack, WORKSPACE, "audit-key", "admin"),
        api_key(owner_api, clean_stack, WORKSPACE, "audit-reader", "viewer"),
    ]
    kb = owner_api.create_kb("audited")
    return Scene(clean_stack, owner, callers, kb, random.Random(SEED))


def test_random_mutations_each_leave_exactly_one_row(scene: Scene) -> None:
    print(f"RAGLINE_AUDIT_SEED={SEED}")
    outcomes: dict[str, int] = {}
    for number in range(40):
        make = scene.rng.choice(MUTATIONS)
        caller = scene.rng.choice(scene.callers)
        method, path, kwargs, action, targets = make(scene)
        request_id = f"audit-{SEED}-{number}"
        response = call(caller, method, path, request_id, **kwargs)
        response.get_data()  # a stream runs to its end
        where = f"seed {SEED}, call {number}: {caller.name} {method} {path}"
        assert response.headers["X-Request-Id"] == request_id, where
        [row] = rows_of(scene.stack, request_id)  # exactly one
        assert row["actor"] == caller.id, where
        assert row["credential_kind"] == ("api_key" if caller.is_key else "token"), where
        assert row["credential_id"] == caller.id.removeprefix("key:"), where
        assert (row["action"], row["workspace"]) == (action, WORKSPACE), where
        assert row["target_ids"][: len(targets)] == targets, where
        assert row["user_agent"] == "audit-test/1", where
        status = response.status_code
        if status < 300:
            assert row["outcome"] == "succeeded", where
            assert row["status"] in (None, status), where  # null: written with the change
        else:
            assert (row["outcome"], row["status"]) == (
                "denied" if status in (401, 403, 404, 429) else "failed",
                status,
            ), where
        outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
    print(f"outcomes {outcomes}")
    assert outcomes.get("succeeded") and outcomes.get("denied"), outcomes


def test_a_change_and_its_row_commit_in_one_transaction(scene: Scene) -> None:
    database = scene.stack.database
    kb = scene.kb["id"]
    response = call(
        scene.owner, "PATCH", f"/v1/knowledge-bases/{kb}", "same-tx", json={"routing": "off"}
    )
    assert response.status_code == 200
    [row] = rows_of(scene.stack, "same-tx")
    assert (row["outcome"], row["status"]) == ("succeeded", None)  # written with the change
    changed = database.scalar(
        "SELECT xmin::text FROM knowledge_bases WHERE id = CAST(:k AS uuid)", k=kb
    )
    logged = database.scalar("SELECT xmin::text FROM audit_log WHERE request_id = 'same-tx'")
    assert changed == logged


def test_reads_are_not_audited_but_refusals_of_mutations_are(scene: Scene) -> None:
    viewer = scene.callers[3]
    assert call(viewer, "GET", "/v1/knowledge-bases", "a-read").status_code == 200
    assert rows_of(scene.stack, "a-read") == []
    doc = scene.document()
    assert call(viewer, "DELETE", f"/v1/documents/{doc}", "refused").status_code == 403
    [row] = rows_of(scene.stack, "refused")
    assert (row["outcome"], row["status"], row["target_ids"]) == ("denied", 403, [doc])
    anonymous = Caller("nobody", Api(scene.stack, ""), "", None, None)
    assert call(anonymous, "DELETE", f"/v1/documents/{doc}", "anon").status_code == 401
    [row] = rows_of(scene.stack, "anon")
    assert (row["actor"], row["credential_kind"], row["outcome"]) == ("", "none", "denied")


def test_client_address_request_id_and_trace_are_recorded(scene: Scene) -> None:
    kb = scene.kb["id"]
    headers = {
        **scene.owner.api.headers,
        # What Google's load balancer passes on: the client's claim, client, balancer.
        "X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.1.2.3",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "User-Agent": "curl/8",
    }
    response = scene.owner.api.client.patch(
        f"/v1/knowledge-bases/{kb}", json={"description": "x"}, headers=headers
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 32  # drawn: the caller sent none
    [row] = rows_of(scene.stack, request_id)
    assert row["client_address"] == "203.0.113.7"
    assert row["user_agent"] == "curl/8"
    assert row["at"]


def test_nobody_can_change_or_remove_a_row(scene: Scene) -> None:
    call(scene.owner, "PATCH", f"/v1/knowledge-bases/{scene.kb['id']}", "kept", json={})
    [row] = rows_of(scene.stack, "kept")
    database = scene.stack.database
    statements = [
        "UPDATE audit_log SET outcome = 'failed' WHERE id = :i",
        "DELETE FROM audit_log WHERE id = :i",
    ]
    for statement in statements:  # the owner of the table, a superuser here
        with pytest.raises(Exception, match="append-only"):
            database.run(statement, i=row["id"])
    with pytest.raises(Exception, match="append-only"):
        database.run("TRUNCATE audit_log")
    for statement in [*statements, "TRUNCATE audit_log"]:  # the functions' role
        with pytest.raises(Exception, match="permission denied"), database.transaction() as s:
            s.run("SET LOCAL ROLE ragline_app")
            s.run(statement, i=row["id"]) if ":i" in statement else s.run(statement)
    assert rows_of(scene.stack, "kept") == [row]
    with database.transaction() as session:  # it may still read and append
        session.run("SET LOCAL ROLE ragline_app")
        session.run(
            "INSERT INTO audit_log (workspace, actor, credential_kind, credential_id, action,"
            " target_kind, outcome, request_id, trace_id, client_address, user_agent)"
            " VALUES ('default', 'x', 'token', 'x', 'a.b', 'a', 'succeeded', 'appended',"
            " '', '', '')"
        )
    assert len(rows_of(scene.stack, "appended")) == 1


def test_admins_read_filter_page_and_export_their_workspace_log(scene: Scene) -> None:
    owner, admin, editor = scene.callers[0], scene.callers[1], scene.callers[2]
    kb = scene.kb["id"]
    for number in range(5):
        call(admin, "PATCH", f"/v1/knowledge-bases/{kb}", f"p{number}", json={})
    call(editor, "POST", "/v1/knowledge-bases", "refused-create", json={"name": "nope"})
    # Another workspace's log is not this one's.
    other = Api(scene.stack, scene.owner.api.token)
    assert other.post("/v1/workspaces", json={"name": "elsewhere"}).status_code == 201
    elsewhere = Api(scene.stack, scene.owner.api.token, workspace="elsewhere")
    assert elsewhere.post("/v1/knowledge-bases", json={"name": "theirs"}).status_code == 201

    assert editor.api.get("/v1/audit-logs").status_code == 403
    everything = body_of(owner.api.get("/v1/audit-logs?limit=1000"))["audit_logs"]
    assert all(row["workspace"] == WORKSPACE for row in everything)
    assert "theirs" not in json.dumps(everything)
    ids = [int(row["id"]) for row in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    mine = body_of(
        admin.api.get(
            "/v1/audit-logs",
            query_string={"actor": admin.id, "action": "knowledge_base.update", "target": kb},
        )
    )["audit_logs"]
    assert [row["request_id"] for row in mine] == [f"p{n}" for n in range(4, -1, -1)]
    denied = body_of(owner.api.get("/v1/audit-logs", query_string={"outcome": "denied"}))
    assert [row["request_id"] for row in denied["audit_logs"]] == ["refused-create"]

    pages: list[str] = []
    cursor = None
    while True:
        query = {"actor": admin.id, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = body_of(admin.api.get("/v1/audit-logs", query_string=query))
        pages += [row["request_id"] for row in page["audit_logs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [row["request_id"] for row in mine]

    middle = mine[2]["at"]
    since = body_of(admin.api.get("/v1/audit-logs", query_string={"since": middle}))
    assert {row["request_id"] for row in since["audit_logs"]} >= {"p2", "p3", "p4"}
    assert "p0" not in {row["request_id"] for row in since["audit_logs"]}
    until = body_of(
        admin.api.get("/v1/audit-logs", query_string={"until": middle, "actor": admin.id})
    )
    assert [row["request_id"] for row in until["audit_logs"]] == ["p1", "p0"]

    exported = admin.api.get("/v1/audit-logs", headers={"Accept": "application/x-ndjson"})
    assert exported.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in exported.get_data(as_text=True).splitlines()]
    assert [line["id"] for line in lines] == [row["id"] for row in everything]
    as_param = admin.api.get("/v1/audit-logs", query_string={"format": "jsonl"})
    assert as_param.get_data(as_text=True) == exported.get_data(as_text=True)

    assert admin.api.get("/v1/audit-logs?cursor=bogus").status_code == 400
    assert admin.api.get("/v1/audit-logs?since=yesterday").status_code == 400
    assert admin.api.get("/v1/audit-logs?limit=0").status_code == 400


def test_a_request_the_text_rule_refuses_still_leaves_its_row(scene: Scene) -> None:
    headers = {"User-Agent": "bad\x01agent", "X-Forwarded-For": "a\x00b"}
    response = call(scene.owner, "DELETE", "/v1/documents/a%00b", "text-rule", headers=headers)
    assert response.status_code == 400
    [row] = rows_of(scene.stack, "text-rule")
    assert (row["outcome"], row["status"], row["action"]) == ("failed", 400, "document.delete")
    assert row["target_ids"] == ["a\ufffdb"]  # what it sent, made storable
    assert row["client_address"] == "a\ufffdb"


@pytest.mark.parametrize(
    "route",
    [route for route in ALL_ROUTES if route.audit],
    ids=[f"{route.method} {route.path}" for route in ALL_ROUTES if route.audit],
)
def test_every_audited_route_leaves_one_row_per_request(scene: Scene, route: Route) -> None:
    """Any call of an audited route, here a viewer's on ids that exist nowhere."""
    values = {name: uuid.uuid4().hex for name in PATH_ARG.findall(route.path)}
    path = PATH_ARG.sub(lambda found: values[found.group(1)], route.path)
    viewer = scene.callers[3]
    request_id = f"route-{uuid.uuid4().hex}"
    response = call(viewer, route.method, path, request_id, json={})
    response.get_data()
    [row] = rows_of(scene.stack, request_id)
    assert (row["action"], row["actor"]) == (route.audit, viewer.id)
    assert row["target_ids"][: len(values)] == list(values.values())
    assert row["status"] in (None, response.status_code)


class _Lines(logging.Handler):
    """The JSON entries of one logger, as a function writes them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(self.format(record)))


def test_the_request_log_line_carries_the_rows_request_id(scene: Scene) -> None:
    kb = scene.kb["id"]
    lines = _Lines()
    logger = logging.getLogger("shared.invocation")
    logger.addHandler(lines)
    try:
        response = call(scene.owner, "PATCH", f"/v1/knowledge-bases/{kb}", "logged", json={})
    finally:
        logger.removeHandler(lines)
    assert response.status_code == 200
    [row] = rows_of(scene.stack, "logged")
    [line] = [entry for entry in lines.entries if entry["message"] == "request finished"]
    assert line["request_id"] == row["request_id"] == "logged"
    assert line["httpRequest"]["status"] == 200
    assert row["trace_id"] and line["logging.googleapis.com/trace"].endswith(row["trace_id"])
