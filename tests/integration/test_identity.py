"""Identity on the local stack: every route needs a principal; roles, members and grants."""

from __future__ import annotations

import re
from typing import Any

import pytest
from werkzeug.test import Client

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of, token_for
from tests.support.routes import ALL_ROUTES

SEC = "Apple's net sales grew. The iPhone segment reported revenue of $46 billion."
OTHER = "Tomato plants need six hours of sunlight every day to ripen."


# Path arguments that name a file rather than a row (the API reference's assets).
FILE_ARGS = {"<asset>": "swagger-ui.css"}


def _route_path(path: str) -> str:
    """A concrete path for a route pattern (placeholder values for its arguments)."""
    for arg, value in FILE_ARGS.items():
        path = path.replace(arg, value)
    return re.sub(r"<[^>]+>", "00000000-0000-4000-8000-000000000000", path)


def all_routes() -> list[tuple[str, str, bool]]:
    """(method, path pattern, public) of every route of every HTTP function."""
    return [(route.method, route.path, route.public) for route in ALL_ROUTES]


def test_the_route_list_covers_every_http_function() -> None:
    # A new routes table that this test does not list would go unchecked.
    import functions.answer
    import functions.manage
    import functions.upload

    served = {
        (rule.methods and sorted(rule.methods - {"HEAD", "OPTIONS"})[0], rule.rule)
        for module in (functions.answer, functions.manage, functions.upload)
        for rule in module._router._map.iter_rules()
    }
    listed = {(method, path) for method, path, _ in all_routes()}
    assert served == listed


@pytest.mark.parametrize("method,path,public", all_routes(), ids=lambda v: str(v))
def test_every_route_but_healthz_answers_401_without_a_principal(
    stack: LocalStack, method: str, path: str, public: bool
) -> None:
    client = Client(stack.app)
    bad_tokens: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    for headers in bad_tokens:
        response = client.open(_route_path(path), method=method, headers=headers)
        if public:
            assert response.status_code == 200, (method, path)
            continue
        assert response.status_code == 401, (method, path, headers, response.get_data())
        error = body_of(response)["error"]
        assert error["code"].startswith("token_"), error


def test_me_shows_the_caller_and_their_workspaces(clean_stack: LocalStack) -> None:
    owner = Api(clean_stack)
    me = body_of(owner.get("/v1/me"))
    assert me["role"] == "owner" and me["workspace"] == clean_stack.settings.default_workspace
    assert me["principal"]["email"] == f"{clean_stack.settings.default_principal}@localhost"

    created = owner.post("/v1/workspaces", json={"name": "research"})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert owner.post("/v1/workspaces", json={"name": "research"}).status_code == 409
    assert owner.post("/v1/workspaces", json={"name": "no spaces"}).status_code == 400
    names = {w["workspace"]: w["role"] for w in body_of(owner.get("/v1/workspaces"))["workspaces"]}
    assert names == {clean_stack.settings.default_workspace: "owner", "research": "owner"}

    # A stranger is signed in but belongs nowhere: they see only themselves.
    stranger = Api(clean_stack, token_for(clean_stack, "stranger"))
    assert body_of(stranger.get("/v1/me"))["workspaces"] == []
    assert body_of(stranger.get("/v1/knowledge-bases"))["knowledge_bases"] == []
    assert stranger.get("/v1/workspaces/research/members").status_code == 404


def _invite(owner: Api, stack: LocalStack, subject: str, role: str, **extra: Any) -> Api:
    """Invite ``subject``'s email with ``role``; return their API once they signed in."""
    email = f"{subject}@example.org"
    response = owner.post(
        f"/v1/workspaces/{stack.settings.default_workspace}/members",
        json={"email": email, "role": role, **extra},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    member = Api(stack, token_for(stack, subject, email=email))
    assert body_of(member.get("/v1/me"))["role"] == role
    return member


def test_roles_decide_what_members_may_do(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("filings")
    document = owner.ingest(kb["id"], "apple.txt", SEC.encode())
    viewer = _invite(owner, stack, "vera", "viewer")
    editor = _invite(owner, stack, "ed", "editor")
    admin = _invite(owner, stack, "ada", "admin")

    # Everyone reads.
    for member in (viewer, editor, admin):
        listed = body_of(member.get("/v1/knowledge-bases"))["knowledge_bases"]
        assert [k["id"] for k in listed] == [kb["id"]]
        assert member.get(f"/v1/documents/{document['id']}").status_code == 200
        retrieved = member.post(
            "/v1/retrieve", json={"question": "iPhone revenue", "knowledge_base_ids": [kb["id"]]}
        )
        assert retrieved.status_code == 200 and body_of(retrieved)["passages"]

    # Viewers do not write; editors do; only admins manage.
    assert viewer.post(f"/v1/documents/{document['id']}/reindex").status_code == 403
    assert editor.post(f"/v1/documents/{document['id']}/reindex").status_code in (200, 202)
    stack.wait_idle(120)
    assert viewer.post("/v1/knowledge-bases", json={"name": "mine"}).status_code == 403
    assert editor.post("/v1/knowledge-bases", json={"name": "mine"}).status_code == 403
    assert admin.post("/v1/knowledge-bases", json={"name": "mine"}).status_code == 201
    workspace = stack.settings.default_workspace
    assert editor.get(f"/v1/workspaces/{workspace}/members").status_code == 403
    members = body_of(admin.get(f"/v1/workspaces/{workspace}/members"))["members"]
    assert [m["role"] for m in members] == ["owner", "admin", "editor", "viewer"]
    assert editor.delete(f"/v1/documents/{document['id']}").status_code == 403

    # Admins cannot make owners; owners can. The last owner cannot leave or be demoted.
    ada = body_of(admin.get("/v1/me"))["principal"]["id"]
    owner_id = body_of(owner.get("/v1/me"))["principal"]["id"]
    assert (
        admin.patch(f"/v1/workspaces/{workspace}/members/{ada}", json={"role": "owner"}).status_code
        == 403
    )
    assert owner.delete(f"/v1/workspaces/{workspace}/members/{owner_id}").status_code == 409
    demote = owner.patch(f"/v1/workspaces/{workspace}/members/{owner_id}", json={"role": "admin"})
    assert demote.status_code == 409
    assert (
        owner.patch(f"/v1/workspaces/{workspace}/members/{ada}", json={"role": "owner"}).status_code
        == 200
    )
    assert owner.delete(f"/v1/workspaces/{workspace}/members/{owner_id}").status_code == 204
    left = body_of(admin.get(f"/v1/workspaces/{workspace}/members"))["members"]
    assert owner_id not in {m["principal"] for m in left}
    assert [m["role"] for m in left] == ["owner", "editor", "viewer"]


def test_a_limited_member_reads_only_what_is_granted(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    granted = owner.create_kb("granted")
    hidden = owner.create_kb("hidden")
    seen = owner.ingest(granted["id"], "garden.txt", OTHER.encode())
    secret = owner.ingest(hidden["id"], "apple.txt", SEC.encode())
    lim = _invite(owner, stack, "lim", "viewer", limited=True)
    lim_id = body_of(lim.get("/v1/me"))["principal"]["id"]

    # Nothing until granted.
    assert body_of(lim.get("/v1/knowledge-bases"))["knowledge_bases"] == []
    grant = owner.put(
        f"/v1/knowledge-bases/{granted['id']}/grants/{lim_id}", json={"access": "read"}
    )
    assert grant.status_code == 200, grant.get_data(as_text=True)
    assert [k["id"] for k in body_of(lim.get("/v1/knowledge-bases"))["knowledge_bases"]] == [
        granted["id"]
    ]

    # The other knowledge base and its document do not exist for them.
    assert lim.get(f"/v1/documents/{secret['id']}").status_code == 404
    assert lim.get(f"/v1/documents/{seen['id']}").status_code == 200
    asked = lim.post(
        "/v1/retrieve", json={"question": "iPhone revenue", "knowledge_base_ids": [hidden["id"]]}
    )
    assert asked.status_code == 404
    mine = lim.post(
        "/v1/retrieve", json={"question": "sunlight", "knowledge_base_ids": [granted["id"]]}
    )
    passages = body_of(mine)["passages"]
    assert passages and {p["document_id"] for p in passages} == {seen["id"]}

    # The owner's citation of the hidden document is not viewable by them.
    owner_passages = body_of(
        owner.post(
            "/v1/retrieve", json={"question": "iPhone", "knowledge_base_ids": [hidden["id"]]}
        )
    )["passages"]
    chunk = owner_passages[0]["chunk_id"]
    assert owner.get(f"/v1/citations/{chunk}/viewer").status_code == 200
    assert lim.get(f"/v1/citations/{chunk}/viewer").status_code == 404

    # A read grant does not let them write; revoking it hides the knowledge base again.
    assert lim.post(f"/v1/documents/{seen['id']}/reindex").status_code == 403
    revoke = owner.delete(f"/v1/knowledge-bases/{granted['id']}/grants/{lim_id}")
    assert revoke.status_code == 204
    assert lim.get(f"/v1/documents/{seen['id']}").status_code == 404


def test_workspaces_are_isolated(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("filings")
    document = owner.ingest(kb["id"], "apple.txt", SEC.encode())
    other = Api(stack, token_for(stack, "olga"))
    assert other.post("/v1/workspaces", json={"name": "olgas"}).status_code == 201
    theirs = Api(stack, other.token, workspace="olgas")
    assert body_of(theirs.get("/v1/knowledge-bases"))["knowledge_bases"] == []
    assert theirs.get(f"/v1/documents/{document['id']}").status_code == 404
    assert theirs.get(f"/v1/knowledge-bases/{kb['id']}/documents").status_code == 404
    assert (
        theirs.post(
            "/v1/retrieve", json={"question": "iPhone", "knowledge_base_ids": [kb["id"]]}
        ).status_code
        == 404
    )
    assert theirs.delete(f"/v1/documents/{document['id']}").status_code == 404
    assert owner.get(f"/v1/documents/{document['id']}").status_code == 200
    # Naming a workspace they do not belong to gives them no role there.
    intruder = Api(stack, other.token, workspace=stack.settings.default_workspace)
    assert intruder.get(f"/v1/documents/{document['id']}").status_code == 404


def test_api_keys_are_shown_once_scoped_revocable_and_expire(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    workspace = stack.settings.default_workspace
    kb = owner.create_kb("filings")
    document = owner.ingest(kb["id"], "apple.txt", SEC.encode())
    keys = f"/v1/workspaces/{workspace}/api-keys"

    created = owner.post(keys, json={"name": "ci", "role": "viewer"})
    assert created.status_code == 201, created.get_data(as_text=True)
    key = body_of(created)["key"]
    listed = body_of(owner.get(keys))["api_keys"]
    assert [k["id"] for k in listed] == [body_of(created)["id"]]
    assert "key" not in listed[0] and key not in owner.get(keys).get_data(as_text=True)

    server = Api(stack, key)
    assert server.get(f"/v1/documents/{document['id']}").status_code == 200
    assert server.post("/v1/knowledge-bases", json={"name": "nope"}).status_code == 403
    assert server.post(keys, json={"name": "more", "role": "viewer"}).status_code == 403
    used = body_of(owner.get(keys))["api_keys"][0]
    assert used["last_used_at"] is not None

    # Nothing the table holds works as a key.
    for row in stack.database.run("SELECT * FROM api_keys"):
        for value in row:
            as_text = value.hex() if isinstance(value, bytes) else str(value)
            for candidate in (as_text, f"rlk_{row[0]}_{as_text}"):
                assert Api(stack, candidate).get("/v1/knowledge-bases").status_code == 401

    # A tampered secret, a key of another workspace, revoked and expired keys.
    assert Api(stack, key[:-1] + ("A" if key[-1] != "A" else "B")).get("/v1/me").status_code == 401
    olga = Api(stack, token_for(stack, "olga"))
    assert olga.post("/v1/workspaces", json={"name": "olgas"}).status_code == 201
    theirs = body_of(
        olga.post("/v1/workspaces/olgas/api-keys", json={"name": "x", "role": "admin"})
    )
    foreign = Api(stack, theirs["key"])
    assert foreign.get(f"/v1/documents/{document['id']}").status_code == 404
    assert (
        Api(stack, theirs["key"], workspace=workspace)
        .get(f"/v1/documents/{document['id']}")
        .status_code
        == 404
    )
    assert foreign.delete(f"/v1/documents/{document['id']}").status_code == 404

    assert owner.delete(f"{keys}/{body_of(created)['id']}").status_code == 204
    refused = server.get("/v1/knowledge-bases")
    assert refused.status_code == 401 and body_of(refused)["error"]["code"] == "api_key_revoked"

    short = body_of(
        owner.post(keys, json={"name": "short", "role": "editor", "expires_in_days": 1})
    )
    assert Api(stack, short["key"]).get("/v1/knowledge-bases").status_code == 200
    stack.database.run(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id",
        id=short["id"],
    )
    expired = Api(stack, short["key"]).get("/v1/knowledge-bases")
    assert expired.status_code == 401 and body_of(expired)["error"]["code"] == "api_key_expired"


def test_access_requests_are_approved_into_grants_or_denied(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    workspace = stack.settings.default_workspace
    kb = owner.create_kb("private")
    document = owner.ingest(kb["id"], "apple.txt", SEC.encode())
    lim = _invite(owner, stack, "lim", "viewer", limited=True)
    other = _invite(owner, stack, "oth", "viewer", limited=True)
    assert lim.get(f"/v1/documents/{document['id']}").status_code == 404

    asked = lim.post(
        f"/v1/knowledge-bases/{kb['id']}/access-requests", json={"access": "read", "reason": "Q3"}
    )
    assert asked.status_code == 201, asked.get_data(as_text=True)
    request_id = body_of(asked)["id"]
    # Asking again updates the one pending request.
    again = lim.post(f"/v1/knowledge-bases/{kb['id']}/access-requests", json={"access": "read"})
    assert body_of(again)["id"] == request_id
    denied_id = body_of(
        other.post(f"/v1/knowledge-bases/{kb['id']}/access-requests", json={"access": "write"})
    )["id"]

    requests_path = f"/v1/workspaces/{workspace}/access-requests"
    assert lim.get(requests_path).status_code == 403
    pending = body_of(owner.get(requests_path, query_string={"status": "pending"}))
    assert {r["id"] for r in pending["access_requests"]} == {request_id, denied_id}
    assert lim.post(f"/v1/access-requests/{request_id}/approve").status_code == 404

    approved = owner.post(f"/v1/access-requests/{request_id}/approve")
    assert approved.status_code == 200 and body_of(approved)["status"] == "approved"
    assert owner.post(f"/v1/access-requests/{request_id}/deny").status_code == 409
    assert lim.get(f"/v1/documents/{document['id']}").status_code == 200

    assert body_of(owner.post(f"/v1/access-requests/{denied_id}/deny"))["status"] == "denied"
    assert other.get(f"/v1/documents/{document['id']}").status_code == 404
    assert owner.post("/v1/access-requests/not-a-uuid/approve").status_code == 404
