"""The local stack's OpenID Connect issuer: what Identity Platform is in production.

It signs ID tokens the way Identity Platform does (RS256, a ``kid`` naming a key of
the published JWKS), so the verifier of :mod:`shared.identity.tokens` checks local and
production tokens with the same code, only configured differently.

* The key pair is generated on first use and kept in the data folder
  (``<data>/issuer/signing-key.pem``, mode 0600), so tokens survive restarts and
  ``scripts/ragline token`` can mint one without the stack running. The key id is the
  key's RFC 7638 thumbprint: the file is the whole state.
* The stack serves ``/.well-known/openid-configuration`` and ``/.well-known/jwks.json``
  on its one origin (:class:`LocalIssuer` is a WSGI app), and its Settings point
  ``auth_issuer`` / ``auth_jwks_url`` there (``scripts/localstack/stack.py``).
* ``<data>/issuer/issuer.json`` records the issuer URL and audience of the last stack
  started on the folder, so a token minted by the CLI is for that stack whatever its port.
* :meth:`LocalIssuer.rotate` replaces the key (new kid; the old one leaves the JWKS at
  once), for key-rotation tests. Every process using the folder follows the file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from shared.config import Settings
from shared.identity.tokens import ROLE_CLAIM, WORKSPACE_CLAIM

ISSUER_DIR = "issuer"
KEY_FILE = "signing-key.pem"
STATE_FILE = "issuer.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
ISSUER_PATHS = (DISCOVERY_PATH, JWKS_PATH)
ALGORITHM = "RS256"
# Verifiers cache the keys this long; short, so a rotation shows within minutes even
# for a verifier that never sees an unknown kid.
KEYS_MAX_AGE_S = 300
DEFAULT_PORT = 8080
DEFAULT_ROLE = "owner"


def local_issuer_url(port: int) -> str:
    """The issuer identifier of a local stack on ``port`` (its origin, no trailing slash)."""
    return f"http://127.0.0.1:{port}"


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 of the canonical JSON of (e, kty, n)."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new file beside ``path``, readable by the owner only."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    # Created 0600 (not chmod-ed after), so the key is never readable by others.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def _new_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class _Key:
    private: rsa.RSAPrivateKey
    kid: str
    stamp: tuple[int, int, int]  # (inode, mtime_ns, size) of the file it was read from


class LocalIssuer:
    """Mints and publishes ID tokens for a local stack, keyed in its data folder.

    Args:
        data_dir: The stack's data folder (the key lives in ``<data>/issuer/``).
        issuer: The issuer identifier tokens carry as ``iss`` (the stack's origin).
        audience: The ``aud`` tokens carry (Settings.auth_audience).
        clock: The current time, seconds since the epoch.
    """

    def __init__(
        self,
        data_dir: Path,
        issuer: str,
        audience: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(data_dir).resolve() / ISSUER_DIR
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._clock = clock
        self._lock = threading.Lock()
        self._key: _Key | None = None
        self._current()  # create the key now: the first token should not pay for it

    @classmethod
    def for_data_folder(cls, data_dir: Path, settings: Settings) -> LocalIssuer:
        """The issuer of the stack on ``data_dir``, running or not.

        The issuer URL and audience are those the last stack started on the folder
        recorded; before any stack ran, those a stack on ``$RAGLINE_PORT`` (default
        8080) with these settings will use.
        """
        directory = Path(data_dir).resolve() / ISSUER_DIR
        recorded: Any = {}
        with contextlib.suppress(OSError, ValueError):  # no stack ran on it yet
            recorded = json.loads((directory / STATE_FILE).read_text())
        if not isinstance(recorded, dict):
            recorded = {}
        port = int(os.environ.get("RAGLINE_PORT", str(DEFAULT_PORT)))
        issuer = str(recorded.get("issuer") or local_issuer_url(port))
        audience = str(recorded.get("audience") or settings.auth_audience)
        return cls(data_dir, issuer, audience)

    # ------------------------------------------------------------------ keys

    @property
    def key_path(self) -> Path:
        """The private key's file."""
        return self.directory / KEY_FILE

    @property
    def jwks_url(self) -> str:
        """Where the stack serves this issuer's JWKS."""
        return self.issuer + JWKS_PATH

    @property
    def kid(self) -> str:
        """The id of the current signing key."""
        return self._current().kid

    def _current(self) -> _Key:
        """The signing key, (re)read when the file changed (another process rotated)."""
        with self._lock:
            try:
                stat = self.key_path.stat()
            except FileNotFoundError:
                self._create()
                stat = self.key_path.stat()
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._key is None or self._key.stamp != stamp:
                self._key = self._load(stamp)
            return self._key

    def _create(self) -> None:
        """Create the key file unless another process just did (first writer wins)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        temporary = _write_private(self.key_path, _new_key_pem())
        try:
            os.link(temporary, self.key_path)  # atomic, and fails if the file exists
        except FileExistsError:
            pass
        finally:
            temporary.unlink()

    def _load(self, stamp: tuple[int, int, int]) -> _Key:
        private = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError(f"{self.key_path} does not hold an RSA private key")
        return _Key(private=private, kid=_thumbprint(private.public_key()), stamp=stamp)

    def rotate(self) -> str:
        """Replace the signing key; the old kid leaves the JWKS at once.

        Returns:
            The new key's id.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = _write_private(self.key_path, _new_key_pem())
        os.replace(temporary, self.key_path)  # atomic: readers see the old or the new key
        return self.kid

    def jwks(self) -> dict[str, Any]:
        """The public keys, as a JWKS document."""
        key = self._current()
        public = RSAAlgorithm.to_jwk(key.private.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": key.kid, "alg": ALGORITHM, "use": "sig"}]}

    def openid_configuration(self) -> dict[str, Any]:
        """The OpenID Provider metadata (what a client discovers the issuer by)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "claims_supported": [
                "iss",
                "aud",
                "sub",
                "iat",
                "exp",
                "auth_time",
                "email",
                "email_verified",
                "name",
                WORKSPACE_CLAIM,
                ROLE_CLAIM,
            ],
        }

    def record(self) -> None:
        """Record the issuer URL and audience, for ``scripts/ragline token``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {"issuer": self.issuer, "audience": self.audience, "jwks_url": self.jwks_url}
        path = self.directory / STATE_FILE
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(temporary, path)

    # ------------------------------------------------------------------ tokens

    def mint(
        self,
        subject: str,
        email: str,
        workspace: str | None = None,
        role: str | None = None,
        ttl: int = 3600,
        *,
        name: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed ID token, as Identity Platform would issue it.

        Args:
            subject: ``sub``, the user's id.
            email: ``email`` (marked verified).
            workspace: The ``ragline_workspace`` custom claim, if given.
            role: The ``ragline_role`` custom claim, if given.
            ttl: Seconds until it expires.
            name: ``name``, if given.
            claims: More claims, added last (tests use them to build odd tokens).

        Returns:
            The compact JWT.
        """
        key = self._current()
        now = int(self._clock())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "auth_time": now,
            "exp": now + ttl,
            "email": email,
            "email_verified": True,
        }
        if name is not None:
            payload["name"] = name
        if workspace is not None:
            payload[WORKSPACE_CLAIM] = workspace
        if role is not None:
            payload[ROLE_CLAIM] = role
        payload.update(claims or {})
        return jwt.encode(
            payload, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
        )

    def mint_local(
        self,
        settings: Settings,
        *,
        subject: str | None = None,
        email: str | None = None,
        workspace: str | None = None,
        role: str | None = None,
        ttl: int = 3600,
    ) -> str:
        """A token for the local stack, defaults filled from ``settings``.

        The defaults are the local owner: the settings' default principal
        (``<subject>@localhost``), owner of the default workspace. What
        ``scripts/ragline token`` prints and what the CLI and benchmarks send.
        """
        subject = subject or settings.default_principal
        return self.mint(
            subject,
            email or f"{subject}@localhost",
            workspace=workspace or settings.default_workspace,
            role=role or DEFAULT_ROLE,
            ttl=ttl,
        )

    # ------------------------------------------------------------------ serving

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Serve the discovery document and the JWKS (WSGI)."""
        request = Request(environ)
        documents = {DISCOVERY_PATH: self.openid_configuration, JWKS_PATH: self.jwks}
        document = documents.get(request.path.rstrip("/"))
        if document is None:
            response = Response(
                '{"error": {"code": "not_found"}}', 404, mimetype="application/json"
            )
        elif request.method not in ("GET", "HEAD"):
            response = Response(
                '{"error": {"code": "method_not_allowed"}}',
                405,
                mimetype="application/json",
                headers={"Allow": "GET, HEAD"},
            )
        else:
            response = Response(
                json.dumps(document()),
                mimetype="application/json",
                headers={"Cache-Control": f"public, max-age={KEYS_MAX_AGE_S}"},
            )
        return response(environ, start_response)

    def fetch(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        """A :data:`shared.identity.tokens.Fetcher` answering this issuer's URLs in-process.

        For a verifier in the stack's own process when the origin is not served on a
        port (as in tests); any other URL is a 404.
        """
        if not url.startswith(self.issuer + "/"):
            return 404, {}, b""
        response = Client(self).get(url[len(self.issuer) :])
        return response.status_code, dict(response.headers.items()), response.get_data()
