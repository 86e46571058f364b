"""The local stack's issuer end to end: served on the stack's origin, minted by the CLI.

The stack's settings name its issuer and JWKS URL; serving the stack's one origin on
``stack.port`` makes them real, so these tests verify tokens exactly as a deployed
function would: a TokenVerifier from the settings, keys fetched over HTTP.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from scripts.localstack.issuer import LocalIssuer
from scripts.localstack.stack import LocalStack
from shared.config import read_settings
from shared.identity import TokenVerifier, id_token_verifier
from tests.support.stack import served

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def origin(stack: LocalStack) -> Iterator[str]:
    """The stack's origin, served on the port its settings name."""
    with served(stack.app, port=stack.port) as base_url:
        yield base_url


def stack_verifier(stack: LocalStack) -> TokenVerifier:
    verifier = id_token_verifier(stack.settings)
    assert verifier is not None, "the stack configures ID tokens"
    return verifier


def run_token(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "token", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_stack_settings_point_at_its_issuer(stack: LocalStack, origin: str) -> None:
    settings = stack.settings
    assert settings.auth_issuer == origin == stack.issuer.issuer
    assert settings.auth_jwks_url == origin + "/.well-known/jwks.json"
    with urllib.request.urlopen(origin + "/.well-known/openid-configuration") as response:
        discovery = json.loads(response.read())
    assert discovery["issuer"] == settings.auth_issuer
    assert discovery["jwks_uri"] == settings.auth_jwks_url
    with urllib.request.urlopen(settings.auth_jwks_url) as response:
        assert "max-age=" in response.headers["Cache-Control"]
        assert [key["kid"] for key in json.loads(response.read())["keys"]] == [stack.issuer.kid]


def test_the_issuer_paths_leave_the_api_routes_alone(stack: LocalStack, origin: str) -> None:
    with urllib.request.urlopen(origin + "/healthz") as response:
        assert response.status == 200


def test_a_minted_token_verifies_against_the_stack_jwks(stack: LocalStack, origin: str) -> None:
    verifier = stack_verifier(stack)
    token = stack.issuer.mint("u-7", "u-7@localhost", workspace="acme", role="editor")

    verified = verifier.verify(token)

    assert (verified.subject, verified.workspace, verified.role) == ("u-7", "acme", "editor")
    assert verified.issuer == stack.settings.auth_issuer
    assert verified.claims["aud"] == stack.settings.auth_audience
    assert verifier.key_fetches == 1


def test_ragline_token_prints_a_token_the_stack_accepts(stack: LocalStack, origin: str) -> None:
    result = run_token("--data", str(stack.config.data_dir))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert len(result.stdout.strip().splitlines()) == 1, "only the token on stdout"

    verified = stack_verifier(stack).verify(token)

    settings = stack.settings
    assert verified.subject == settings.default_principal
    assert verified.email == f"{settings.default_principal}@localhost"
    assert verified.workspace == settings.default_workspace
    assert verified.role == "owner"


def test_ragline_token_takes_email_workspace_and_role(stack: LocalStack, origin: str) -> None:
    result = run_token(
        "--data",
        str(stack.config.data_dir),
        "--email",
        "bob@example.com",
        "--workspace",
        "research",
        "--role",
        "viewer",
        "--subject",
        "bob",
    )
    assert result.returncode == 0, result.stderr
    verified = stack_verifier(stack).verify(result.stdout.strip())
    assert (verified.subject, verified.email) == ("bob", "bob@example.com")
    assert (verified.workspace, verified.role) == ("research", "viewer")


def test_ragline_token_works_on_a_folder_no_stack_ran_on(tmp_path: Path, monkeypatch) -> None:
    result = run_token("--data", str(tmp_path / "fresh"))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()

    key_file = tmp_path / "fresh" / "issuer" / "signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The stack that will start on this folder publishes the key the token names.
    monkeypatch.delenv("RAGLINE_PORT", raising=False)
    issuer = LocalIssuer.for_data_folder(tmp_path / "fresh", read_settings())
    assert jwt.get_unverified_header(token)["kid"] == issuer.kid
    verifier = TokenVerifier(
        issuer=issuer.issuer,
        audience=issuer.audience,
        keys_url=issuer.jwks_url,
        fetcher=issuer.fetch,
    )
    assert verifier.verify(token).subject == read_settings().default_principal
