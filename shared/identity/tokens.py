"""Verifying OIDC ID tokens against the issuer's published keys (a JWKS).

Two kinds of token reach Ragline, both JWTs signed with an asymmetric key:

* **ID tokens** from Identity Platform / Firebase Auth (RS256), sent as
  ``Authorization: Bearer <token>``; locally, from the stack's own issuer
  (``scripts/localstack/issuer.py``), which signs the same way.
* **IAP assertions** (ES256) in the ``x-goog-iap-jwt-assertion`` header, when the load
  balancer runs Identity-Aware Proxy.

The cryptography is PyJWT's; this module decides which key and algorithm a token may
use and which claims it must carry. The rules, and why:

* The algorithm is pinned to the configured list, all asymmetric: ``alg: none`` and an
  HS256 token "signed" with the public key (the classic key-confusion attack) are
  refused before any key is looked at, and a key is only used with its own key type.
* Signature first, then claims: a forged token learns nothing about which of ``iss``,
  ``aud`` or the times would have been wrong.
* ``iss``, ``aud``, ``sub``, ``exp`` and ``iat`` are required; ``exp``, ``iat``, ``nbf``
  (and Firebase's ``auth_time``) are checked with a clock skew, on an injectable clock.
* Keys are cached as long as the keys response's ``Cache-Control: max-age`` says
  (bounded), and a token naming an unknown ``kid`` makes the verifier refetch at most
  once per short interval: that is how a key rotation is picked up, and why a flood of
  tokens with random kids cannot turn every request into a keys fetch.
* A keys endpoint that fails is the service's problem, not the caller's: it raises
  :class:`~shared.errors.UnavailableError` (503), never a 401. Keys that were fetched
  before stay in use for a bounded time while the endpoint is down.

Every refusal is an :class:`~shared.errors.UnauthenticatedError` whose code says why:
``token_missing``, ``token_invalid``, ``token_algorithm``, ``token_signature``,
``token_unknown_key``, ``token_expired``, ``token_not_yet_valid``, ``token_audience``,
``token_issuer``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt

from shared.config import Settings
from shared.errors import UnauthenticatedError, UnavailableError

log = logging.getLogger(__name__)

Fetcher = Callable[[str], tuple[int, Mapping[str, str], bytes]]
"""Fetches a URL: returns (HTTP status, response headers, body). May raise ``OSError``."""

Clock = Callable[[], float]
"""Returns the current time in seconds since the epoch."""

# Custom claims the local issuer mints (and Identity Platform can carry as custom
# claims): the caller's workspace and role there. Verification passes them through in
# VerifiedToken.claims; deciding what they allow is shared.auth's job.
WORKSPACE_CLAIM = "ragline_workspace"
ROLE_CLAIM = "ragline_role"

# Identity-Aware Proxy: its signed header, issuer and keys (ES256).
IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_JWKS_URL = "https://www.gstatic.com/iap/verify/public_key-jwk"
IAP_ALGORITHMS = ("ES256",)

# Symmetric algorithms (HS*) are never allowed: with public keys fetched from a URL,
# "the secret" would be a public key anybody has.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

DEFAULT_KEYS_TTL_S = 300.0  # the keys response names no max-age
MAX_KEYS_TTL_S = 24 * 3600.0  # a max-age longer than this is cut to it
REFETCH_INTERVAL_S = 30.0  # at most one fetch per interval (unknown kid, failures)
STALE_IF_ERROR_S = 3600.0  # expired keys stay in use this long while the endpoint fails
FETCH_TIMEOUT_S = 5.0
MAX_KEYS_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 16 * 1024  # ID tokens are ~1 KB; refuse megabytes before parsing them


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims verified.

    Attributes:
        subject: ``sub``: the issuer's stable id of the user (never empty).
        email: ``email``, if the token carries one.
        email_verified: True only when the issuer says the email was verified.
        name: ``name`` (display name), if any.
        issuer: ``iss``.
        claims: Every claim of the token, read-only (custom claims included).
    """

    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    issuer: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def workspace(self) -> str | None:
        """The ``ragline_workspace`` custom claim, if present and a string."""
        value = self.claims.get(WORKSPACE_CLAIM)
        return value if isinstance(value, str) else None

    @property
    def role(self) -> str | None:
        """The ``ragline_role`` custom claim, if present and a string."""
        value = self.claims.get(ROLE_CLAIM)
        return value if isinstance(value, str) else None


def urllib_fetcher(timeout_s: float = FETCH_TIMEOUT_S) -> Fetcher:
    """A :data:`Fetcher` on the standard library (no extra dependency at cold start).

    Args:
        timeout_s: Seconds to connect, and between two reads.

    Returns:
        A fetcher returning error statuses (4xx/5xx) instead of raising for them.
    """

    def fetch(url: str) -> tuple[int, Mapping[str, str], bytes]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                # One byte over the cap tells a too-large body from one exactly at it.
                body = response.read(MAX_KEYS_BYTES + 1)
                return int(response.status), dict(response.headers.items()), body
        except urllib.error.HTTPError as error:
            return int(error.code), dict(error.headers.items()), b""

    return fetch


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value.

    Args:
        authorization: The header's value (None when the request has none).

    Returns:
        The token.

    Raises:
        UnauthenticatedError: ``token_missing`` when there is no bearer token.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if not scheme:
        raise UnauthenticatedError(
            "no credentials: send Authorization: Bearer <token>", code="token_missing"
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError(
            "the Authorization header must be 'Bearer <token>'", code="token_missing"
        )
    return token.strip()


def _refused(message: str, code: str) -> UnauthenticatedError:
    return UnauthenticatedError(message, code=code)


def _max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds a response may be reused per ``Cache-Control`` (and ``Age``), if it says."""
    lowered = {name.lower(): value for name, value in headers.items()}
    age = 0.0
    with contextlib.suppress(ValueError):
        age = max(0.0, float(lowered.get("age", "0")))
    for directive in lowered.get("cache-control", "").split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                return max(0.0, float(value.strip().strip('"')) - age)
            except ValueError:
                return None
    return None


class _FetchFailedError(Exception):
    """The keys endpoint failed; the message (for the log) says how."""


def _unavailable() -> UnavailableError:
    # A new error each time (a stored one would grow its traceback on every raise), and
    # no details: the endpoint's URL and failure are for the log, not for callers.
    return UnavailableError(
        "the token issuer's signing keys are unavailable; try again later",
        code="keys_unavailable",
    )


@dataclass(frozen=True)
class _KeySet:
    """One fetched JWKS: signing keys by kid, and until when they are fresh."""

    keys: Mapping[str, Mapping[str, Any]]
    fresh_until: float
    fetched_at: float


class _KeyCache:
    """The issuer's signing keys, fetched when stale or when a token names a new kid.

    Thread-safe: a fetch happens under a lock, and threads that waited for it see its
    result instead of fetching again.
    """

    def __init__(
        self,
        url: str,
        fetcher: Fetcher,
        clock: Clock,
        *,
        default_ttl_s: float,
        max_ttl_s: float,
        refetch_interval_s: float,
        stale_if_error_s: float,
    ) -> None:
        self.url = url
        self._fetcher = fetcher
        self._clock = clock
        self._default_ttl_s = default_ttl_s
        self._max_ttl_s = max_ttl_s
        self._refetch_interval_s = refetch_interval_s
        self._stale_if_error_s = stale_if_error_s
        self._lock = threading.Lock()
        self._current: _KeySet | None = None
        self._last_attempt: float | None = None
        # Why the last fetch failed (None: it did not); logged, never sent to callers.
        self._last_error: str | None = None
        self.fetches = 0  # attempts so far (for operators' logs and tests)

    def key(self, kid: str) -> Mapping[str, Any]:
        """The JWK named ``kid``.

        Raises:
            UnauthenticatedError: ``token_unknown_key`` when the issuer has no such key.
            UnavailableError: The keys could not be fetched and none usable are cached.
        """
        current = self._current
        if current is not None and self._clock() < current.fresh_until and kid in current.keys:
            return current.keys[kid]  # the common case: no lock
        with self._lock:
            now = self._clock()
            current = self._current
            if current is None or now >= current.fresh_until:
                self._refresh(now)
            elif kid not in current.keys and self._may_fetch(now):
                # A kid we do not know: the issuer may have rotated its keys.
                self._refresh(now)
            current = self._current
            if current is not None and kid in current.keys:
                return current.keys[kid]
            if self._last_error is not None:
                # The endpoint is failing: we cannot tell a new key from a bogus one.
                raise _unavailable()
            raise _refused(
                f"the token's key {kid!r} is not one of the issuer's", "token_unknown_key"
            )

    def _may_fetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._refetch_interval_s

    def _refresh(self, now: float) -> None:
        """Fetch the keys (at most once per refetch interval); keep old ones on failure."""
        if not self._may_fetch(now):
            if self._last_error is not None and not self._usable_stale(now):
                raise _unavailable()
            return
        self._last_attempt = now
        self.fetches += 1
        try:
            self._current = self._fetch(now)
            self._last_error = None
        except _FetchFailedError as failure:
            self._last_error = str(failure)
            log.warning("fetching signing keys from %s failed: %s", self.url, failure)
            if not self._usable_stale(now):
                raise _unavailable() from failure
            log.warning("keeping the expired signing keys of %s meanwhile", self.url)

    def _usable_stale(self, now: float) -> bool:
        current = self._current
        return current is not None and now < current.fresh_until + self._stale_if_error_s

    def _fetch(self, now: float) -> _KeySet:
        try:
            status, headers, body = self._fetcher(self.url)
        except Exception as error:  # the fetcher is injected: any failure is the endpoint's
            raise _FetchFailedError(f"{type(error).__name__}: {error}") from error
        if status != 200:
            raise _FetchFailedError(f"HTTP {status}")
        keys = self._parse(body)
        max_age = _max_age(headers)
        ttl = self._default_ttl_s if max_age is None else max_age
        # Never more often than the refetch interval (no-cache, max-age=0), never
        # longer than the cap (a key the issuer withdraws must stop working).
        ttl = min(max(ttl, self._refetch_interval_s), self._max_ttl_s)
        log.info("fetched %d signing keys from %s (fresh for %.0f s)", len(keys), self.url, ttl)
        return _KeySet(keys=MappingProxyType(keys), fresh_until=now + ttl, fetched_at=now)

    def _parse(self, body: bytes) -> dict[str, Mapping[str, Any]]:
        """Signing keys by kid; entries that are not usable signing keys are skipped."""
        if len(body) > MAX_KEYS_BYTES:
            raise _FetchFailedError(f"the response is over {MAX_KEYS_BYTES} bytes")
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _FetchFailedError("the response is not JSON") from error
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise _FetchFailedError("the response is not a JWKS (no keys list)")
        keys: dict[str, Mapping[str, Any]] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
                continue  # encryption keys and shared secrets never verify a token here
            try:
                jwt.PyJWK(entry)  # parses: a key PyJWT cannot use is skipped, not fatal
            except jwt.PyJWTError as error:
                log.warning("skipping key %r of %s: %s", entry.get("kid"), self.url, error)
                continue
            keys[entry["kid"]] = MappingProxyType(dict(entry))
        return keys


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim, None when absent; a non-number is an invalid token."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refused(f"the token's {name} claim is not a number", "token_invalid")
    return float(value)


class TokenVerifier:
    """Verifies signed OIDC ID tokens of one issuer, for one audience.

    Args:
        issuer: The ``iss`` every token must carry.
        audience: The ``aud`` a token must carry (one of them, if several).
        keys_url: The issuer's JWKS URL (http or https).
        algorithms: Signature algorithms accepted; asymmetric only.
        clock_skew_s: Seconds of clock difference tolerated on ``exp``/``iat``/``nbf``.
        fetcher: Fetches the keys URL (default: urllib with a 5 s timeout).
        clock: The current time, seconds since the epoch (default ``time.time``).
        default_keys_ttl_s: How long keys stay fresh when the response names no max-age.
        max_keys_ttl_s: The longest keys stay fresh, whatever the response says.
        refetch_interval_s: The shortest interval between two fetches of the keys
            (after an unknown kid or a failure).
        stale_if_error_s: How long after expiry cached keys stay in use while the keys
            endpoint fails.

    Raises:
        ValueError: A configuration that could never verify safely (no issuer,
            audience or keys URL; a symmetric or unknown algorithm).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Sequence[str],
        keys_url: str,
        algorithms: Sequence[str] = ("RS256",),
        clock_skew_s: float = 60.0,
        fetcher: Fetcher | None = None,
        clock: Clock = time.time,
        default_keys_ttl_s: float = DEFAULT_KEYS_TTL_S,
        max_keys_ttl_s: float = MAX_KEYS_TTL_S,
        refetch_interval_s: float = REFETCH_INTERVAL_S,
        stale_if_error_s: float = STALE_IF_ERROR_S,
    ) -> None:
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not issuer:
            raise ValueError("a token verifier needs an issuer")
        if not audiences or not all(audiences):
            raise ValueError("a token verifier needs an audience")
        if not keys_url.startswith(("https://", "http://")):
            raise ValueError(f"the keys URL must be http(s): {keys_url!r}")
        refused = [alg for alg in algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if refused or not algorithms:
            raise ValueError(
                f"algorithms must be asymmetric signature algorithms, not {refused or 'none'}"
            )
        self.issuer = issuer
        self.audiences = audiences
        self.algorithms = tuple(algorithms)
        self.clock_skew_s = clock_skew_s
        self._clock = clock
        self._keys = _KeyCache(
            keys_url,
            fetcher or urllib_fetcher(),
            clock,
            default_ttl_s=default_keys_ttl_s,
            max_ttl_s=max_keys_ttl_s,
            refetch_interval_s=refetch_interval_s,
            stale_if_error_s=stale_if_error_s,
        )

    @property
    def keys_url(self) -> str:
        """The JWKS URL keys are fetched from."""
        return self._keys.url

    @property
    def key_fetches(self) -> int:
        """How many times the keys were fetched (or tried) so far."""
        return self._keys.fetches

    def verify(self, token: str | None) -> VerifiedToken:
        """Verify ``token``'s signature and claims.

        Args:
            token: The compact JWT (the part after ``Bearer``); None or empty when the
                request carried none.

        Returns:
            The verified token.

        Raises:
            UnauthenticatedError: The token is missing or does not verify; ``code``
                says why.
            UnavailableError: The issuer's keys could not be fetched.
        """
        if not token:
            raise _refused("no bearer token", "token_missing")
        if len(token) > MAX_TOKEN_CHARS:
            raise _refused("the token is too large", "token_invalid")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise _refused(f"the token is not a JWT: {error}", "token_invalid") from error
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise _refused(
                f"the token's algorithm {algorithm!r} is not accepted", "token_algorithm"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refused("the token names no signing key (kid)", "token_invalid")
        key = self._key(kid, algorithm)
        claims = self._decode(token, key)
        self._check_times(claims)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise _refused("the token's subject (sub) is empty", "token_invalid")
        email, name = claims.get("email"), claims.get("name")
        return VerifiedToken(
            subject=subject,
            email=email if isinstance(email, str) and email else None,
            # Some issuers send the string "true"; anything else is unverified.
            email_verified=claims.get("email_verified") in (True, "true"),
            name=name if isinstance(name, str) and name else None,
            issuer=str(claims["iss"]),
            claims=MappingProxyType(claims),
        )

    def _key(self, kid: str, algorithm: str) -> jwt.PyJWK:
        """The issuer's key ``kid``, bound to ``algorithm`` (which must suit the key)."""
        jwk = self._keys.key(kid)
        declared = jwk.get("alg")
        if declared is not None and declared != algorithm:
            raise _refused(
                f"key {kid!r} is for {declared}, the token says {algorithm}", "token_algorithm"
            )
        try:
            # With the algorithm given, PyJWK refuses a key of another type (an EC key
            # for RS256), so a key is only ever used the way it was meant.
            return jwt.PyJWK(dict(jwk), algorithm=algorithm)
        except jwt.PyJWTError as error:
            raise _refused(
                f"key {kid!r} cannot verify {algorithm}: {error}", "token_algorithm"
            ) from error

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        """Signature, issuer, audience and required claims (times are checked after)."""
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=list(self.algorithms),
                audience=list(self.audiences),
                issuer=self.issuer,
                # PyJWT reads its own clock; times are checked on ours (_check_times).
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["iss", "aud", "sub", "exp", "iat"],
                },
            )
        except jwt.InvalidSignatureError as error:
            raise _refused("the token's signature does not verify", "token_signature") from error
        except jwt.InvalidAlgorithmError as error:
            raise _refused(
                f"the token's algorithm is not accepted: {error}", "token_algorithm"
            ) from error
        except jwt.InvalidAudienceError as error:
            raise _refused("the token is for another audience", "token_audience") from error
        except jwt.InvalidIssuerError as error:
            raise _refused("the token is from another issuer", "token_issuer") from error
        except jwt.MissingRequiredClaimError as error:
            raise _refused(f"the token has no {error.claim} claim", "token_invalid") from error
        except jwt.InvalidTokenError as error:
            raise _refused(f"the token is invalid: {error}", "token_invalid") from error

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        skew = self.clock_skew_s
        expires = _number(claims, "exp")
        if expires is not None and now >= expires + skew:
            raise _refused("the token has expired", "token_expired")
        for name in ("iat", "nbf", "auth_time"):
            moment = _number(claims, name)
            if moment is not None and moment > now + skew:
                raise _refused(f"the token is not valid yet ({name})", "token_not_yet_valid")


def id_token_verifier(
    settings: Settings, *, fetcher: Fetcher | None = None, clock: Clock = time.time
) -> TokenVerifier | None:
    """The verifier of bearer ID tokens the settings describe (None if unconfigured).

    Args:
        settings: ``auth_issuer``, ``auth_audience``, ``auth_jwks_url``, ``auth_algorithms``.
        fetcher: Fetches the keys (default: urllib).
        clock: The current time (default ``time.time``).

    Returns:
        A verifier, or None when ``auth_issuer`` is empty (ID tokens not accepted).
    """
    if not settings.auth_issuer:
        return None
    return TokenVerifier(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        keys_url=settings.auth_jwks_url,
        algorithms=settings.auth_algorithms,
        fetcher=fetcher,
        clock=clock,
    )


def iap_verifier(
    settings: Settings, *, fetcher: Fetcher | None = None, clock: Clock = time.time
) -> TokenVerifier | None:
    """The verifier of IAP's signed header (None when ``auth_iap_audience`` is empty).

    Args:
        settings: ``auth_iap_audience``: the backend service IAP protects.
        fetcher: Fetches the keys (default: urllib).
        clock: The current time (default ``time.time``).

    Returns:
        A verifier of ``x-goog-iap-jwt-assertion`` (ES256, IAP's issuer and keys).
    """
    if not settings.auth_iap_audience:
        return None
    return TokenVerifier(
        issuer=IAP_ISSUER,
        audience=settings.auth_iap_audience,
        keys_url=IAP_JWKS_URL,
        algorithms=IAP_ALGORITHMS,
        fetcher=fetcher,
        clock=clock,
    )
