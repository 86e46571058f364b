"""The local stack's OIDC issuer on its own: key file, JWKS, minting, rotation.

Tokens are checked with the product's TokenVerifier, fed by the issuer's in-process
fetcher (the loopback HTTP path is tests/integration/test_local_issuer.py's).
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest

from scripts.localstack.issuer import (
    DISCOVERY_PATH,
    JWKS_PATH,
    KEY_FILE,
    KEYS_MAX_AGE_S,
    STATE_FILE,
    LocalIssuer,
)
from shared.config import read_settings
from shared.errors import UnauthenticatedError
from shared.identity import TokenVerifier

ISSUER = "http://127.0.0.1:18080"
AUDIENCE = "ragline-local"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier_for(issuer: LocalIssuer, clock: Clock | None = None) -> TokenVerifier:
    return TokenVerifier(
        issuer=issuer.issuer,
        audience=issuer.audience,
        keys_url=issuer.jwks_url,
        fetcher=issuer.fetch,
        clock=clock or time.time,
    )


def test_the_key_is_created_once_owner_readable_only(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path, ISSUER, AUDIENCE)
    key_file = tmp_path / "issuer" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in key_file.read_bytes()
    # Another instance (another process: the CLI) on the folder uses the same key.
    assert LocalIssuer(tmp_path, ISSUER, AUDIENCE).kid == issuer.kid
    assert [p.name for p in key_file.parent.iterdir()] == [KEY_FILE], "no temporary left"


def test_a_minted_token_verifies_with_its_custom_claims(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path, ISSUER, AUDIENCE)
    token = verifier_for(issuer).verify(
        issuer.mint("u-1", "u-1@localhost", workspace="acme", role="viewer", name="U")
    )
    assert (token.subject, token.email, token.email_verified, token.name) == (
        "u-1",
        "u-1@localhost",
        True,
        "U",
    )
    assert (token.workspace, token.role, token.issuer) == ("acme", "viewer", ISSUER)
    header = jwt.get_unverified_header(issuer.mint("u-1", "u-1@localhost"))
    assert header["alg"] == "RS256" and header["kid"] == issuer.kid


def test_without_workspace_or_role_the_claims_are_absent(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path, ISSUER, AUDIENCE)
    token = verifier_for(issuer).verify(issuer.mint("u-1", "u-1@localhost"))
    assert "ragline_workspace" not in token.claims and "ragline_role" not in token.claims


def test_the_ttl_sets_the_expiry(tmp_path: Path) -> None:
    clock = Clock()
    issuer = LocalIssuer(tmp_path, ISSUER, AUDIENCE, clock=clock)
    verifier = verifier_for(issuer, clock)
    token = issuer.mint("u-1", "u-1@localhost", ttl=600)
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == clock.now + 600
    clock.now += 600 + 61
    with pytest.raises(UnauthenticatedError) as caught:
        verifier.verify(token)
    assert caught.value.code == "token_expired"


def test_the_jwks_and_discovery_document_are_served(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path, ISSUER, AUDIENCE)
    status, headers, body = issuer.fetch(ISSUER + JWKS_PATH)
    assert status == 200
    assert headers["Cache-Control"] == f"public, max-age={KEYS_MAX_AGE_S}"
    (key,) = json.loads(body)["keys"]
    assert (key["kid"], key["kty"], key["alg"], key["use"]) == (issuer.kid, "RSA", "RS256", "sig")
    assert "d" not in key and "p" not in key, "the JWKS carries the public key only"
    status, _, body = issuer.fetch(ISSUER + DISCOVERY_PATH)
    discovery = json.loads(body)
    assert discovery["issuer"] == ISSUER and discovery["jwks_uri"] == ISSUER + JWKS_PATH
    assert issuer.fetch(ISSUER + "/elsewhere")[0] == 404
    assert issuer.fetch("http://other.example" + JWKS_PATH)[0] == 404


def test_rotation_replaces_the_key_and_verifiers_follow(tmp_path: Path) -> None:
    clock = Clock()
    issuer = LocalIssuer(tmp_path, ISSUER, AUDIENCE, clock=clock)
    verifier = verifier_for(issuer, clock)
    old_kid = issuer.kid
    old_token = issuer.mint("u-1", "u-1@localhost", ttl=10_000)
    assert verifier.verify(old_token).subject == "u-1"

    new_kid = issuer.rotate()

    assert new_kid != old_kid and issuer.kid == new_kid
    assert [key["kid"] for key in issuer.jwks()["keys"]] == [new_kid], "old key removed"
    assert stat.S_IMODE(issuer.key_path.stat().st_mode) == 0o600
    # Another process on the folder (the CLI) follows the file.
    assert LocalIssuer(tmp_path, ISSUER, AUDIENCE).kid == new_kid
    clock.now += 60  # beyond the verifier's refetch interval
    assert verifier.verify(issuer.mint("u-2", "u-2@localhost")).subject == "u-2"
    assert verifier.key_fetches == 2
    with pytest.raises(UnauthenticatedError) as caught:
        verifier.verify(old_token)
    assert caught.value.code == "token_unknown_key"


def test_an_instance_follows_a_rotation_made_by_another(tmp_path: Path) -> None:
    serving = LocalIssuer(tmp_path, ISSUER, AUDIENCE)
    new_kid = LocalIssuer(tmp_path, ISSUER, AUDIENCE).rotate()
    assert [key["kid"] for key in serving.jwks()["keys"]] == [new_kid]


def test_for_data_folder_uses_what_the_stack_recorded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RAGLINE_PORT", raising=False)
    settings = read_settings().model_copy(update={"auth_audience": "aud-from-settings"})
    before = LocalIssuer.for_data_folder(tmp_path, settings)
    assert (before.issuer, before.audience) == ("http://127.0.0.1:8080", "aud-from-settings")

    LocalIssuer(tmp_path, "http://127.0.0.1:9123", "recorded-aud").record()
    recorded = json.loads((tmp_path / "issuer" / STATE_FILE).read_text())
    assert recorded["jwks_url"] == "http://127.0.0.1:9123" + JWKS_PATH

    after = LocalIssuer.for_data_folder(tmp_path, settings)
    assert (after.issuer, after.audience) == ("http://127.0.0.1:9123", "recorded-aud")
    assert after.kid == before.kid
