"""Routes of identity: the caller, workspaces, members and knowledge-base grants.

Served by the ``manage`` function. Workspace routes name the workspace in the path and
check the caller's membership of that workspace (not the one the request acts in); a
workspace the caller is not a member of answers 404, as if it did not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared.api import audit
from shared.api.access import require_kb
from shared.api.authn import KEY_PRINCIPAL_PREFIX
from shared.api.http import Reply, Route, model_response, read_json, read_query
from shared.auth import ROLE_LEVEL, Principal
from shared.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from shared.identity.api_keys import mint_key
from shared.identity.tickets import (
    TICKET_PARAM,
    TICKET_TTL_S,
    is_stream_path,
    new_ticket,
    ticket_hash,
)
from shared.pipeline import removal
from shared.runtime import Runtime
from shared.store import access as store
from shared.store import api_keys as key_store
from shared.store.access import Membership
from shared.store.rejections import list_rejections
from shared.store.tickets import issue_ticket

# As knowledge-base names: they appear in bucket paths (<workspace>/<knowledge-base>/...).
WORKSPACE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
EMAIL = r"^[^@\s]{1,200}@[^@\s]{1,200}$"


class WorkspaceBody(BaseModel):
    """Body of ``POST /v1/workspaces`` and ``PATCH /v1/workspaces/{name}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=WORKSPACE_NAME)


class InviteBody(BaseModel):
    """Body of ``POST /v1/workspaces/{name}/members``."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(pattern=EMAIL)
    role: Literal["owner", "admin", "editor", "viewer"]
    limited: bool = False


class MemberBody(BaseModel):
    """Body of ``PATCH /v1/workspaces/{name}/members/{principal}``."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["owner", "admin", "editor", "viewer"]
    limited: bool = False


class GrantBody(BaseModel):
    """Body of ``PUT /v1/knowledge-bases/{id}/grants/{principal}``."""

    model_config = ConfigDict(extra="forbid")

    access: Literal["read", "write"]


class MembershipReply(Reply):
    """A workspace of the caller's, with their role there."""

    workspace: str
    role: str
    limited: bool


class Caller(Reply):
    """Who the caller is."""

    id: str
    email: str | None


class Me(Reply):
    """Body of ``GET /v1/me``."""

    principal: Caller
    workspace: str
    role: str | None
    limited: bool
    workspaces: list[MembershipReply]


class WorkspaceList(Reply):
    """Body of ``GET /v1/workspaces``."""

    workspaces: list[MembershipReply]


class WorkspaceRenamed(Reply):
    """Body of ``PATCH /v1/workspaces/{name}``."""

    workspace: str
    role: str


class MemberReply(Reply):
    """A member of a workspace."""

    principal: str
    email: str | None
    display_name: str | None
    role: str
    limited: bool
    created_at: str


class InvitationReply(Reply):
    """An invitation not yet accepted (on the invitee's next sign-in)."""

    email: str
    role: str
    limited: bool
    invited_by: str
    created_at: str


class MemberList(Reply):
    """Body of ``GET /v1/workspaces/{name}/members``."""

    members: list[MemberReply]
    invitations: list[InvitationReply]


class Invited(Reply):
    """Body of ``POST /v1/workspaces/{name}/members``."""

    email: str
    role: str
    limited: bool
    status: Literal["invited"]


class MemberRole(Reply):
    """Body of ``PATCH /v1/workspaces/{name}/members/{principal}``."""

    principal: str
    role: str
    limited: bool


class GrantReply(Reply):
    """A member's access to a knowledge base."""

    kb_id: str
    principal: str
    access: str


class GrantDetail(GrantReply):
    """A grant with who made it and when."""

    granted_by: str
    created_at: str


class GrantList(Reply):
    """Body of ``GET /v1/knowledge-bases/{id}/grants``."""

    grants: list[GrantDetail]


class ApiKeyReply(Reply):
    """An API key of a workspace, without its secret."""

    id: str
    workspace: str
    name: str
    role: str
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class NewApiKey(ApiKeyReply):
    """An API key just created, with the key itself (shown this once)."""

    key: str


class ApiKeyList(Reply):
    """Body of ``GET /v1/workspaces/{name}/api-keys``."""

    api_keys: list[ApiKeyReply]


class AccessRequestReply(Reply):
    """A member's request for access to a knowledge base."""

    id: str
    kb_id: str
    principal: str
    access: str
    reason: str
    status: str
    decided_by: str | None
    created_at: str
    decided_at: str | None


class AccessRequestList(Reply):
    """Body of ``GET /v1/workspaces/{name}/access-requests``."""

    access_requests: list[AccessRequestReply]


class AccessRequestsQuery(BaseModel):
    """Query of ``GET /v1/workspaces/{name}/access-requests``."""

    status: Literal["pending", "approved", "denied"] | None = None


class RejectionsQuery(BaseModel):
    """Query of ``GET /v1/workspaces/{name}/ingest-rejections``."""

    limit: int = Field(100, ge=1, le=1000)


class RejectionReply(Reply):
    """An object dropped into the bucket and refused."""

    id: str
    bucket: str
    object: str
    generation: str | None
    reason: str
    message: str
    workspace: str | None
    knowledge_base: str | None
    created_at: str


class RejectionList(Reply):
    """Body of ``GET /v1/workspaces/{name}/ingest-rejections``, newest first."""

    rejections: list[RejectionReply]


class Ticket(Reply):
    """A single-use ticket opening one stream (send it as the ``param`` query parameter)."""

    ticket: str
    path: str
    expires_in: int
    param: str


def get_me(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The caller, the workspace the request acts in, and every workspace of theirs."""
    with runtime.database.transaction() as session:
        # Signing in is what accepts invitations: a frontend calls this first.
        store.sign_in(session, principal.id, principal.email, None)
        memberships = store.memberships_of(session, principal.id)
    return model_response(
        Me,
        {
            "principal": {"id": principal.id, "email": principal.email},
            "workspace": principal.workspace,
            "role": principal.role,
            "limited": principal.limited,
            "workspaces": [membership.to_json() for membership in memberships],
        },
    )


def post_workspace(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Create a workspace; the caller is its owner."""
    body = WorkspaceBody.model_validate(read_json(request))
    audit.note(targets=[body.name])
    if principal.id.startswith(KEY_PRINCIPAL_PREFIX):
        raise ForbiddenError("API keys cannot create workspaces", code="forbidden")
    with runtime.database.transaction() as session:
        store.sign_in(session, principal.id, principal.email, None)
        workspace_id = store.create_workspace(session, body.name, principal.id)
    if workspace_id is None:
        raise ConflictError(f"workspace {body.name!r} exists", code="workspace_exists")
    return model_response(
        MembershipReply, {"workspace": body.name, "role": "owner", "limited": False}, 201
    )


def get_workspaces(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The caller's workspaces and their role in each."""
    memberships = store.memberships_of(runtime.database, principal.id)
    return model_response(
        WorkspaceList, {"workspaces": [membership.to_json() for membership in memberships]}
    )


def _membership(
    runtime: Runtime, principal: Principal, workspace: str, at_least: str
) -> Membership:
    """The caller's membership of ``workspace`` if its role is ``at_least``; else 404/403."""
    membership = store.membership(runtime.database, principal.id, workspace)
    if membership is None and principal.workspace == workspace and principal.role:
        # An API key acts in its workspace with its role, without a membership row.
        workspace_id = store.workspace_id(runtime.database, workspace)
        if workspace_id is not None:
            membership = store.Membership(
                workspace_id=workspace_id,
                workspace=workspace,
                role=principal.role,
                limited=principal.limited,
            )
    if membership is None:
        raise NotFoundError(f"workspace {workspace!r} not found", code="workspace_not_found")
    if ROLE_LEVEL[membership.role] < ROLE_LEVEL[at_least]:
        raise ForbiddenError(
            f"your role in workspace {workspace!r} does not allow this", code="forbidden"
        )
    return membership


def patch_workspace(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """Rename a workspace (admins)."""
    membership = _membership(runtime, principal, workspace, "admin")
    body = WorkspaceBody.model_validate(read_json(request))
    with runtime.database.transaction() as session:
        renamed = store.rename_workspace(session, membership.workspace_id, body.name)
    if not renamed:
        raise ConflictError(f"workspace {body.name!r} exists", code="workspace_exists")
    return model_response(WorkspaceRenamed, {"workspace": body.name, "role": membership.role})


def delete_workspace(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """Delete a workspace and everything in it (owners; never the default workspace)."""
    membership = _membership(runtime, principal, workspace, "owner")
    if workspace == runtime.settings.default_workspace:
        raise ConflictError(
            "the default workspace cannot be deleted (the bucket's folders ingest into it)",
            code="default_workspace",
        )
    removal.delete_workspace(runtime, membership.workspace_id)
    return Response(status=204)


def get_members(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """The workspace's members and pending invitations (admins)."""
    membership = _membership(runtime, principal, workspace, "admin")
    members = store.list_members(runtime.database, membership.workspace_id)
    invitations = store.list_invitations(runtime.database, membership.workspace_id)
    return model_response(
        MemberList,
        {
            "members": [member.to_json() for member in members],
            "invitations": [invitation.to_json() for invitation in invitations],
        },
    )


def _check_role_change(membership: Membership, role: str) -> None:
    """Only owners make owners or change an owner's role."""
    if role == "owner" and membership.role != "owner":
        raise ForbiddenError("only an owner can make an owner", code="forbidden")


def post_member(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """Invite someone by email (admins); accepted on their next sign-in."""
    membership = _membership(runtime, principal, workspace, "admin")
    body = InviteBody.model_validate(read_json(request))
    _check_role_change(membership, body.role)
    with runtime.database.transaction() as session:
        store.invite(
            session,
            membership.workspace_id,
            body.email,
            body.role,
            limited=body.limited,
            invited_by=principal.id,
        )
    return model_response(
        Invited,
        {
            "email": body.email.lower(),
            "role": body.role,
            "limited": body.limited,
            "status": "invited",
        },
        201,
    )


def patch_member(
    runtime: Runtime, request: Request, principal: Principal, workspace: str, member: str
) -> Response:
    """Change a member's role (admins; owners for owners). The last owner stays an owner."""
    membership = _membership(runtime, principal, workspace, "admin")
    body = MemberBody.model_validate(read_json(request))
    with runtime.database.transaction() as session:
        members = {m.principal: m for m in store.lock_members(session, membership.workspace_id)}
        current = members.get(member)
        if current is None:
            raise NotFoundError(f"member {member!r} not found", code="member_not_found")
        if current.role == "owner" or body.role == "owner":
            _check_role_change(membership, "owner")
        owners = [m for m in members.values() if m.role == "owner"]
        if current.role == "owner" and body.role != "owner" and len(owners) == 1:
            raise ConflictError("a workspace keeps at least one owner", code="last_owner")
        store.put_member(
            session,
            membership.workspace_id,
            member,
            body.role,
            limited=body.limited and body.role not in ("owner", "admin"),
        )
    return model_response(
        MemberRole, {"principal": member, "role": body.role, "limited": body.limited}
    )


def delete_member(
    runtime: Runtime, request: Request, principal: Principal, workspace: str, member: str
) -> Response:
    """Remove a member (admins), or leave (anyone). The last owner cannot leave."""
    leaving = member == principal.id
    membership = _membership(runtime, principal, workspace, "viewer" if leaving else "admin")
    with runtime.database.transaction() as session:
        members = {m.principal: m for m in store.lock_members(session, membership.workspace_id)}
        current = members.get(member)
        if current is None:
            raise NotFoundError(f"member {member!r} not found", code="member_not_found")
        if current.role == "owner" and not leaving:
            _check_role_change(membership, "owner")
        if current.role == "owner" and sum(m.role == "owner" for m in members.values()) == 1:
            raise ConflictError("the last owner cannot leave", code="last_owner")
        store.remove_member(session, membership.workspace_id, member)
    return Response(status=204)


def get_grants(runtime: Runtime, request: Request, principal: Principal, kb_id: str) -> Response:
    """The grants on a knowledge base (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    grants = store.list_grants(runtime.database, kb.id)
    return model_response(GrantList, {"grants": [grant.to_json() for grant in grants]})


def put_grant(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str, member: str
) -> Response:
    """Grant read or write on a knowledge base to a member of its workspace (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    body = GrantBody.model_validate(read_json(request))
    if store.membership(runtime.database, member, principal.workspace) is None:
        raise InvalidInputError(
            f"{member!r} is not a member of workspace {principal.workspace!r}",
            code="not_a_member",
        )
    with runtime.database.transaction() as session:
        store.put_grant(session, kb.id, member, body.access, principal.id)
    return model_response(GrantReply, {"kb_id": kb.id, "principal": member, "access": body.access})


def delete_grant(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str, member: str
) -> Response:
    """Revoke a member's grant on a knowledge base (admins)."""
    kb = require_kb(runtime.database, kb_id, principal, "admin")
    with runtime.database.transaction() as session:
        if not store.revoke_grant(session, kb.id, member):
            raise NotFoundError(f"no grant for {member!r}", code="grant_not_found")
    return Response(status=204)


class ApiKeyBody(BaseModel):
    """Body of ``POST /v1/workspaces/{name}/api-keys``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["admin", "editor", "viewer"]
    expires_in_days: int | None = Field(None, ge=1, le=3650)


def post_api_key(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """Create an API key (admins). The key is in this response only; it is not stored."""
    membership = _membership(runtime, principal, workspace, "admin")
    if principal.id.startswith(KEY_PRINCIPAL_PREFIX):
        raise ForbiddenError("an API key cannot create API keys", code="forbidden")
    body = ApiKeyBody.model_validate(read_json(request))
    minted = mint_key()
    expires_at = (
        dt.datetime.now(dt.UTC) + dt.timedelta(days=body.expires_in_days)
        if body.expires_in_days
        else None
    )
    with runtime.database.transaction() as session:
        key_store.insert_key(
            session,
            key_id=minted.id,
            workspace_id=membership.workspace_id,
            name=body.name,
            role=body.role,
            secret_sha256=minted.secret_sha256,
            created_by=principal.id,
            expires_at=expires_at,
        )
    stored = key_store.get_key(runtime.database, minted.id)
    if stored is None:  # inserted just above
        raise RuntimeError(f"the API key {minted.id} just stored is missing")
    return model_response(NewApiKey, {**stored.to_json(), "key": minted.key}, 201)


def get_api_keys(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """The workspace's API keys, without their secrets (admins)."""
    membership = _membership(runtime, principal, workspace, "admin")
    keys = key_store.list_keys(runtime.database, membership.workspace_id)
    return model_response(ApiKeyList, {"api_keys": [key.to_json() for key in keys]})


def delete_api_key(
    runtime: Runtime, request: Request, principal: Principal, workspace: str, key_id: str
) -> Response:
    """Revoke an API key of the workspace (admins); it is refused from now on."""
    membership = _membership(runtime, principal, workspace, "admin")
    with runtime.database.transaction() as session:
        if not key_store.revoke_key(session, membership.workspace_id, key_id):
            raise NotFoundError(f"API key {key_id!r} not found", code="api_key_not_found")
    return Response(status=204)


class AccessRequestBody(BaseModel):
    """Body of ``POST /v1/knowledge-bases/{id}/access-requests``."""

    model_config = ConfigDict(extra="forbid")

    access: Literal["read", "write"]
    reason: str = Field("", max_length=2000)


def post_access_request(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str
) -> Response:
    """Ask the workspace's admins for access to one of its knowledge bases (members)."""
    from shared.knowledge_bases import find_knowledge_base

    body = AccessRequestBody.model_validate(read_json(request))
    kb = find_knowledge_base(runtime.database, kb_id, principal.workspace)
    if kb is None or principal.level == 0:
        raise NotFoundError(f"knowledge base {kb_id!r} not found", code="knowledge_base_not_found")
    with runtime.database.transaction() as session:
        opened = store.open_request(session, kb.id, principal.id, body.access, body.reason)
    return model_response(AccessRequestReply, opened.to_json(), 201)


def get_access_requests(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """The workspace's access requests (admins); ``?status=pending`` filters."""
    membership = _membership(runtime, principal, workspace, "admin")
    status = read_query(request, AccessRequestsQuery).status
    found = store.list_requests(runtime.database, membership.workspace_id, status)
    return model_response(AccessRequestList, {"access_requests": [r.to_json() for r in found]})


def get_ingest_rejections(
    runtime: Runtime, request: Request, principal: Principal, workspace: str
) -> Response:
    """Objects dropped into the bucket for this workspace and refused, newest first (admins).

    Only refusals of objects naming this workspace while it existed: one naming a
    workspace that did not exist belongs to no workspace (``scripts/ragline rejections``).
    """
    membership = _membership(runtime, principal, workspace, "admin")
    limit = read_query(request, RejectionsQuery).limit
    found = list_rejections(runtime.database, workspace_id=membership.workspace_id, limit=limit)
    return model_response(
        RejectionList, {"rejections": [rejection.to_json() for rejection in found]}
    )


def _decide(runtime: Runtime, principal: Principal, request_id: str, status: str) -> Response:
    from shared.ids import is_uuid

    found = store.get_request(runtime.database, request_id) if is_uuid(request_id) else None
    missing = NotFoundError(f"access request {request_id!r} not found", code="request_not_found")
    if found is None:
        raise missing
    try:
        require_kb(runtime.database, found.kb_id, principal, "admin")
    except NotFoundError:
        raise missing from None
    with runtime.database.transaction() as session:
        if not store.decide_request(session, found.id, status, principal.id):
            raise ConflictError("the request was already decided", code="request_decided")
        if status == "approved":
            store.put_grant(session, found.kb_id, found.principal, found.access, principal.id)
    decided = store.get_request(runtime.database, found.id)
    if decided is None:  # removed with its knowledge base meanwhile
        raise missing
    return model_response(AccessRequestReply, decided.to_json())


def post_approve(
    runtime: Runtime, request: Request, principal: Principal, request_id: str
) -> Response:
    """Approve an access request (admins): the requester gets the grant asked for."""
    return _decide(runtime, principal, request_id, "approved")


def post_deny(
    runtime: Runtime, request: Request, principal: Principal, request_id: str
) -> Response:
    """Deny an access request (admins)."""
    return _decide(runtime, principal, request_id, "denied")


class TicketBody(BaseModel):
    """Body of ``POST /v1/stream-tickets``."""

    model_config = ConfigDict(extra="forbid")

    # The handler checks the path (invalid_stream_path); the pattern documents it.
    path: str = Field(
        max_length=200,
        json_schema_extra={"pattern": r"^/v1/(ask/stream|documents/[0-9a-fA-F-]{36}/events)$"},
    )


def post_stream_ticket(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """A single-use ticket opening one stream for the caller (for ``EventSource``)."""
    body = TicketBody.model_validate(read_json(request))
    if not is_stream_path(body.path):
        raise InvalidInputError(
            "tickets open /v1/ask/stream or /v1/documents/{id}/events only",
            code="invalid_stream_path",
        )
    ticket = new_ticket()
    issue_ticket(
        runtime.database,
        ticket_sha256=ticket_hash(ticket),
        principal=principal.id,
        email=principal.email,
        workspace=principal.workspace,
        role=principal.role,
        limited=principal.limited,
        path=body.path,
        ttl_s=TICKET_TTL_S,
    )
    return model_response(
        Ticket,
        {"ticket": ticket, "path": body.path, "expires_in": TICKET_TTL_S, "param": TICKET_PARAM},
        201,
    )


WS = "/v1/workspaces/<workspace>"
KB = "/v1/knowledge-bases/<kb_id>"
CONFLICT = frozenset({409})
ME = ("identity",)
WORKSPACES = ("workspaces",)
ACCESS = ("access",)

ROUTES = [
    Route("GET", "/v1/me", get_me, responses={200: Me}, tags=ME),
    Route(
        "POST",
        "/v1/stream-tickets",
        post_stream_ticket,
        audit="stream_ticket.create",
        body=TicketBody,
        responses={201: Ticket},
        tags=ME,
    ),
    Route(
        "POST",
        "/v1/workspaces",
        post_workspace,
        audit="workspace.create",
        body=WorkspaceBody,
        responses={201: MembershipReply},
        errors=CONFLICT,
        tags=WORKSPACES,
    ),
    Route("GET", "/v1/workspaces", get_workspaces, responses={200: WorkspaceList}, tags=WORKSPACES),
    Route(
        "PATCH",
        WS,
        patch_workspace,
        audit="workspace.update",
        body=WorkspaceBody,
        responses={200: WorkspaceRenamed},
        errors=CONFLICT,
        tags=WORKSPACES,
    ),
    Route(
        "DELETE",
        WS,
        delete_workspace,
        audit="workspace.delete",
        responses={204: None},
        errors=CONFLICT,
        tags=WORKSPACES,
    ),
    Route("GET", f"{WS}/members", get_members, responses={200: MemberList}, tags=WORKSPACES),
    Route(
        "POST",
        f"{WS}/members",
        post_member,
        audit="member.invite",
        body=InviteBody,
        responses={201: Invited},
        tags=WORKSPACES,
    ),
    Route(
        "PATCH",
        f"{WS}/members/<member>",
        patch_member,
        audit="member.update",
        body=MemberBody,
        responses={200: MemberRole},
        errors=CONFLICT,
        tags=WORKSPACES,
    ),
    Route(
        "DELETE",
        f"{WS}/members/<member>",
        delete_member,
        audit="member.remove",
        responses={204: None},
        errors=CONFLICT,
        tags=WORKSPACES,
    ),
    Route(
        "POST",
        f"{WS}/api-keys",
        post_api_key,
        audit="api_key.create",
        body=ApiKeyBody,
        responses={201: NewApiKey},
        tags=WORKSPACES,
    ),
    Route("GET", f"{WS}/api-keys", get_api_keys, responses={200: ApiKeyList}, tags=WORKSPACES),
    Route(
        "DELETE",
        f"{WS}/api-keys/<key_id>",
        delete_api_key,
        audit="api_key.revoke",
        responses={204: None},
        tags=WORKSPACES,
    ),
    Route(
        "POST",
        f"{KB}/access-requests",
        post_access_request,
        audit="access_request.create",
        body=AccessRequestBody,
        responses={201: AccessRequestReply},
        tags=ACCESS,
    ),
    Route(
        "GET",
        f"{WS}/access-requests",
        get_access_requests,
        query=AccessRequestsQuery,
        responses={200: AccessRequestList},
        tags=ACCESS,
    ),
    Route(
        "GET",
        f"{WS}/ingest-rejections",
        get_ingest_rejections,
        query=RejectionsQuery,
        responses={200: RejectionList},
        tags=WORKSPACES,
    ),
    Route(
        "POST",
        "/v1/access-requests/<request_id>/approve",
        post_approve,
        audit="access_request.approve",
        responses={200: AccessRequestReply},
        errors=CONFLICT,
        tags=ACCESS,
    ),
    Route(
        "POST",
        "/v1/access-requests/<request_id>/deny",
        post_deny,
        audit="access_request.deny",
        responses={200: AccessRequestReply},
        errors=CONFLICT,
        tags=ACCESS,
    ),
    Route("GET", f"{KB}/grants", get_grants, responses={200: GrantList}, tags=ACCESS),
    Route(
        "PUT",
        f"{KB}/grants/<member>",
        put_grant,
        audit="grant.put",
        body=GrantBody,
        responses={200: GrantReply},
        tags=ACCESS,
    ),
    Route(
        "DELETE",
        f"{KB}/grants/<member>",
        delete_grant,
        audit="grant.delete",
        responses={204: None},
        tags=ACCESS,
    ),
]
