"""Principals of every kind for access tests: members by role, limited members, keys.

Each is made through the HTTP API, as a frontend and its admins would: members are
invited by email and accept by signing in, keys are created by an admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of, token_for


@dataclass
class Caller:
    """A principal that calls the API, with what the tests know of its access.

    Attributes:
        name: What the tests call it.
        api: The API as this principal.
        id: Its principal id (``key:<id>`` for an API key).
        workspace: The workspace its membership (or key) is in; None if it has none.
        role: Its role there; None for a signed-in principal without membership.
        limited: A limited membership (only granted knowledge bases).
        is_key: An API key rather than a person.
    """

    name: str
    api: Api
    id: str
    workspace: str | None
    role: str | None
    limited: bool = False
    is_key: bool = False


def invite(
    admin: Api, stack: LocalStack, workspace: str, subject: str, role: str, limited: bool = False
) -> Caller:
    """Invite ``subject`` to ``workspace`` with ``role``; they sign in and accept."""
    email = f"{subject}@example.org"
    response = admin.post(
        f"/v1/workspaces/{workspace}/members",
        json={"email": email, "role": role, "limited": limited},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    api = Api(stack, token_for(stack, subject, email=email), workspace=workspace)
    me = body_of(api.get("/v1/me"))
    assert me["role"] == role and me["limited"] == limited, me
    return Caller(subject, api, me["principal"]["id"], workspace, role, limited)


def api_key(admin: Api, stack: LocalStack, workspace: str, name: str, role: str) -> Caller:
    """An API key of ``workspace`` with ``role``, created by ``admin``."""
    response = admin.post(f"/v1/workspaces/{workspace}/api-keys", json={"name": name, "role": role})
    assert response.status_code == 201, response.get_data(as_text=True)
    created = body_of(response)
    return Caller(
        name, Api(stack, created["key"]), f"key:{created['id']}", workspace, role, is_key=True
    )


def signed_in(stack: LocalStack, subject: str, workspace: str | None = None) -> Caller:
    """A principal that signed in (``/v1/me``) and belongs to no workspace yet."""
    api = Api(stack, token_for(stack, subject), workspace=workspace)
    me = body_of(api.get("/v1/me"))
    assert me["workspaces"] == [], me
    return Caller(subject, api, me["principal"]["id"], None, None)


def workspace_owner(stack: LocalStack, subject: str, workspace: str) -> Caller:
    """A principal that created ``workspace`` (its owner) and acts in it."""
    creator = Api(stack, token_for(stack, subject))
    response = creator.post("/v1/workspaces", json={"name": workspace})
    assert response.status_code == 201, response.get_data(as_text=True)
    api = Api(stack, creator.token, workspace=workspace)
    me = body_of(api.get("/v1/me"))
    return Caller(subject, api, me["principal"]["id"], workspace, "owner")
