"""Credential verification: who signed a bearer token, for whom, and is it still valid.

This package checks credentials and nothing else; deciding what a verified caller may
do (workspaces, roles, grants) is :mod:`shared.auth`'s job.
"""

from shared.identity.tokens import (
    IAP_HEADER,
    IAP_ISSUER,
    IAP_JWKS_URL,
    ROLE_CLAIM,
    WORKSPACE_CLAIM,
    Fetcher,
    TokenVerifier,
    VerifiedToken,
    bearer_token,
    iap_verifier,
    id_token_verifier,
)

__all__ = [
    "IAP_HEADER",
    "IAP_ISSUER",
    "IAP_JWKS_URL",
    "ROLE_CLAIM",
    "WORKSPACE_CLAIM",
    "Fetcher",
    "TokenVerifier",
    "VerifiedToken",
    "bearer_token",
    "iap_verifier",
    "id_token_verifier",
]
