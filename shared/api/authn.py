"""Who is calling: a verified bearer token turned into a Principal acting in a workspace.

Every route but ``/healthz`` goes through :func:`authenticate`. The credential is an ID
token (``shared.identity.tokens``) whose subject is the principal's id, or an API key
(``shared.identity.api_keys``) acting as ``key:<id>`` in its workspace with its role.
A browser's ``EventSource`` cannot send a header: the two streams also accept a
single-use ticket in the URL (``?ticket=``, ``shared.identity.tickets``), issued a
moment before to a caller who authenticated with a header. The workspace
the request acts in is the ``X-Ragline-Workspace`` header's, else the settings' default
workspace if the caller belongs to it, else the first workspace of theirs; the role is
their membership's there (none: they can only see themselves and create workspaces).

Memberships come from the database. Two settings provision them from the credential:
``auth_bootstrap_owners`` (verified emails that own the default workspace, so a fresh
deployment has an owner) and ``auth_role_claims`` (trust the issuer's
``ragline_workspace`` / ``ragline_role`` custom claims: the local issuer's, or Identity
Platform custom claims, which only an admin can set).
"""

from __future__ import annotations

import datetime as dt

from werkzeug.wrappers import Request

from shared.auth import ROLES, Principal, Role
from shared.db import Session
from shared.errors import UnauthenticatedError
from shared.identity.api_keys import check_usable, looks_like_key, parse_key, secret_matches
from shared.identity.tickets import TICKET_PARAM, ticket_hash
from shared.identity.tokens import VerifiedToken, bearer_token
from shared.runtime import Runtime
from shared.store import access as store
from shared.store import api_keys as key_store
from shared.store.knowledge_bases import ensure_workspace
from shared.store.tickets import redeem_ticket

WORKSPACE_HEADER = "X-Ragline-Workspace"
# API keys act as principals named after their public id.
KEY_PRINCIPAL_PREFIX = "key:"


def authenticate(runtime: Runtime, request: Request) -> Principal:
    """The caller of ``request``, or UnauthenticatedError (401).

    Raises:
        UnauthenticatedError: No bearer token, or one that does not verify (its code
            says why).
    """
    ticket = request.args.get(TICKET_PARAM)
    if ticket and not request.headers.get("Authorization"):
        return ticket_principal(runtime, ticket, request.path)
    token = bearer_token(request.headers.get("Authorization"))
    asked = request.headers.get(WORKSPACE_HEADER)
    if looks_like_key(token):
        return key_principal(runtime, token, asked)
    verifier = runtime.token_verifier
    if verifier is None:
        raise UnauthenticatedError(
            "this deployment accepts no ID tokens (auth_issuer is not set)", code="token_issuer"
        )
    verified = verifier.verify(token)
    return principal_for(runtime, verified, asked)


def ticket_principal(runtime: Runtime, ticket: str, path: str) -> Principal:
    """The principal a stream ticket was issued to, if it is valid for ``path``.

    Their role in the ticket's workspace is the one they have now (an API key's, if
    the key is still usable).

    Raises:
        UnauthenticatedError: ``ticket_invalid``: unknown, used, expired, or issued for
            another path; ``api_key_*``: the key it was issued to is no longer usable.
    """
    redeemed = redeem_ticket(runtime.database, ticket_hash(ticket))
    if redeemed is None or redeemed.path != path:
        raise UnauthenticatedError(
            "the stream ticket is unknown, used, expired or for another stream",
            code="ticket_invalid",
        )
    # The role is read again, not taken from the ticket: a membership removed or a key
    # revoked since the ticket was issued counts.
    role: Role | None
    if redeemed.principal.startswith(KEY_PRINCIPAL_PREFIX):
        key = key_store.get_key(runtime.database, redeemed.principal[len(KEY_PRINCIPAL_PREFIX) :])
        if key is None:
            raise UnauthenticatedError("unknown API key", code="api_key_invalid")
        check_usable(key.revoked_at, key.expires_at, dt.datetime.now(dt.UTC))
        role, limited = key.role, False
    else:
        membership = store.membership(runtime.database, redeemed.principal, redeemed.workspace)
        role = membership.role if membership else None
        limited = membership.limited if membership else False
    return Principal(
        id=redeemed.principal,
        workspace=redeemed.workspace,
        role=role,
        email=redeemed.email,
        limited=limited,
        credential="ticket",
    )


def key_principal(runtime: Runtime, token: str, asked: str | None) -> Principal:
    """The principal of an API key: ``key:<id>``, in the key's workspace with its role.

    A request naming another workspace gets no role there (the key cannot touch it).

    Raises:
        UnauthenticatedError: The key is malformed, unknown, revoked or expired.
    """
    key_id, secret = parse_key(token)
    key = key_store.get_key(runtime.database, key_id)
    if key is None or not secret_matches(secret, key.secret_sha256):
        raise UnauthenticatedError("unknown API key", code="api_key_invalid")
    check_usable(key.revoked_at, key.expires_at, dt.datetime.now(dt.UTC))
    key_store.touch_key(runtime.database, key.id)
    principal_id = f"{KEY_PRINCIPAL_PREFIX}{key.id}"
    if asked and asked != key.workspace:
        return Principal(id=principal_id, workspace=asked, credential="api_key")
    return Principal(
        id=principal_id,
        workspace=key.workspace,
        role=key.role,
        credential="api_key",
    )


def principal_for(runtime: Runtime, verified: VerifiedToken, asked: str | None) -> Principal:
    """The principal of a verified token, acting in workspace ``asked`` (or their default).

    Args:
        runtime: The instance's runtime (settings and database).
        verified: The verified ID token.
        asked: The workspace the request names, if it names one.
    """
    settings = runtime.settings
    email = verified.email if verified.email_verified else None
    workspace = asked or settings.default_workspace
    membership = store.membership(runtime.database, verified.subject, workspace)
    if membership is None:
        # First request of this principal (or to this workspace): record the sign-in,
        # accept invitations, provision what the settings say, and look again.
        with runtime.database.transaction() as session:
            store.sign_in(session, verified.subject, email, verified.name)
            _provision(runtime, session, verified, email)
        membership = store.membership(runtime.database, verified.subject, workspace)
        if membership is None and not asked:
            mine = store.memberships_of(runtime.database, verified.subject)
            membership = mine[0] if mine else None
    if membership is None:
        return Principal(id=verified.subject, workspace=workspace, email=email)
    return Principal(
        id=verified.subject,
        workspace=membership.workspace,
        role=membership.role,
        email=email,
        limited=membership.limited,
    )


def _provision(
    runtime: Runtime, session: Session, verified: VerifiedToken, email: str | None
) -> None:
    settings = runtime.settings
    owners = {owner.lower() for owner in settings.auth_bootstrap_owners}
    if email and email.lower() in owners:
        workspace_id = ensure_workspace(session, settings.default_workspace)
        store.put_member(session, workspace_id, verified.subject, "owner", limited=False)
    if settings.auth_role_claims and verified.workspace and verified.role in ROLES:
        workspace_id = ensure_workspace(session, verified.workspace)
        store.put_member(session, workspace_id, verified.subject, verified.role, limited=False)
