"""API keys for servers: minted once, shown once, stored as a public id and a hash.

A key reads ``rlk_<id>_<secret>``: ``id`` is public (it names the row), ``secret`` is
32 random bytes (``secrets.token_urlsafe``). The database keeps SHA-256 of the secret:
a fast hash is right for a high-entropy secret (there is nothing to guess), and
nothing stored works as a key. Keys act in one workspace with one role, may expire,
and are revocable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from shared.errors import UnauthenticatedError

PREFIX = "rlk_"
_KEY = re.compile(r"^rlk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class MintedKey:
    """A new key: its public id, the whole key (shown once) and its secret's hash."""

    id: str
    key: str
    secret_sha256: bytes


def mint_key() -> MintedKey:
    """A new random API key."""
    key_id = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return MintedKey(id=key_id, key=f"{PREFIX}{key_id}_{secret}", secret_sha256=_hash(secret))


def looks_like_key(token: str) -> bool:
    """True if a bearer token is meant as an API key (by its prefix)."""
    return token.startswith(PREFIX)


def parse_key(token: str) -> tuple[str, str]:
    """The (public id, secret) of a presented key.

    Raises:
        UnauthenticatedError: ``api_key_invalid`` if it is not shaped as a key.
    """
    found = _KEY.match(token)
    if found is None:
        raise UnauthenticatedError("malformed API key", code="api_key_invalid")
    return found.group(1), found.group(2)


def secret_matches(secret: str, stored_sha256: bytes) -> bool:
    """True if ``secret`` hashes to the stored hash (compared in constant time)."""
    return hmac.compare_digest(_hash(secret), bytes(stored_sha256))


def check_usable(
    revoked_at: dt.datetime | None, expires_at: dt.datetime | None, now: dt.datetime
) -> None:
    """Raise UnauthenticatedError if a key is revoked or expired."""
    if revoked_at is not None:
        raise UnauthenticatedError("the API key was revoked", code="api_key_revoked")
    if expires_at is not None and expires_at <= now:
        raise UnauthenticatedError("the API key has expired", code="api_key_expired")


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
