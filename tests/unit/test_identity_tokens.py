"""TokenVerifier against real keys, served as a JWKS over loopback HTTP.

Keys are generated here (RSA for ID tokens, EC P-256 for IAP); the keys endpoint is a
real ``http.server`` on 127.0.0.1 that counts its requests, reached through the
verifier's default (urllib) fetcher unless a test injects one. Time is an injected
clock, so cache windows and token lifetimes are exact.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.api.http import bearer_challenge, status_of
from shared.config import Settings, read_settings
from shared.errors import UnauthenticatedError, UnavailableError
from shared.identity import (
    IAP_ISSUER,
    IAP_JWKS_URL,
    TokenVerifier,
    VerifiedToken,
    bearer_token,
    iap_verifier,
    id_token_verifier,
)

ISSUER = "https://securetoken.google.com/ragline-test"
AUDIENCE = "ragline-test"
T0 = 1_800_000_000.0


class Clock:
    """An injected clock: tests move it by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class KeysServer:
    """A JWKS endpoint on 127.0.0.1: its keys, headers and status are the test's to set."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.cache_control: str | None = "public, max-age=300"
        self.status = 200
        self.delay_s = 0.0
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests += 1
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                body = json.dumps(owner.jwks).encode() if owner.status == 200 else b"oops"
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                if owner.cache_control is not None:
                    self.send_header("Cache-Control", owner.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def publish(self, *jwks: dict[str, Any]) -> None:
        self.jwks = {"keys": list(jwks)}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key_2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": "ES256"}


@pytest.fixture
def keys(rsa_key: rsa.RSAPrivateKey) -> Iterator[KeysServer]:
    server = KeysServer()
    server.publish(rsa_jwk(rsa_key, "k1"))
    yield server
    server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_verifier(keys: KeysServer, clock: Clock, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, keys_url=keys.url, clock=clock, **options
    )


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": int(T0),
        "exp": int(T0) + 3600,
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada",
        "ragline_workspace": "acme",
        "ragline_role": "editor",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: Any, kid: str | None = "k1", algorithm: str = "RS256", **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def settings(**values: Any) -> Settings:
    """The environment's settings with ``values`` set."""
    return read_settings().model_copy(update=values)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(verifier: TokenVerifier, token: str | None) -> str:
    """The code of the UnauthenticatedError verifying ``token`` raises."""
    with pytest.raises(UnauthenticatedError) as caught:
        verifier.verify(token)
    return caught.value.code


# --------------------------------------------------------------------------- valid


def test_a_valid_token_verifies_through_a_real_keys_endpoint(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock)  # the default fetcher: urllib over loopback

    token = verifier.verify(sign(rsa_key))

    assert isinstance(token, VerifiedToken)
    assert (token.subject, token.email, token.email_verified, token.name) == (
        "user-1",
        "ada@example.com",
        True,
        "Ada",
    )
    assert token.issuer == ISSUER
    assert (token.workspace, token.role) == ("acme", "editor")
    assert token.claims["aud"] == AUDIENCE
    with pytest.raises(TypeError):
        token.claims["sub"] = "someone else"  # type: ignore[index]
    assert keys.requests == 1


def test_an_audience_list_containing_ours_verifies(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock)
    assert verifier.verify(sign(rsa_key, aud=["other", AUDIENCE])).subject == "user-1"


def test_email_verified_is_true_only_when_the_issuer_says_so(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock)
    assert not verifier.verify(sign(rsa_key, email_verified=None)).email_verified
    assert not verifier.verify(sign(rsa_key, email_verified="yes")).email_verified
    assert verifier.verify(sign(rsa_key, email=None)).email is None


# --------------------------------------------------------------------------- times


def test_an_expired_token_is_refused_beyond_the_clock_skew(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock)
    clock.advance(3600 + 59)  # expired 59 s ago: within the 60 s skew
    assert verifier.verify(sign(rsa_key)).subject == "user-1"
    clock.advance(2)
    assert refused(verifier, sign(rsa_key)) == "token_expired"


def test_a_token_not_yet_valid_is_refused_beyond_the_clock_skew(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock)
    # nbf and iat in the future, within the skew: accepted (clocks differ a little).
    assert verifier.verify(sign(rsa_key, nbf=int(T0) + 59, iat=int(T0) + 59)).subject
    assert refused(verifier, sign(rsa_key, nbf=int(T0) + 120)) == "token_not_yet_valid"
    assert refused(verifier, sign(rsa_key, iat=int(T0) + 120)) == "token_not_yet_valid"
    assert refused(verifier, sign(rsa_key, auth_time=int(T0) + 120)) == "token_not_yet_valid"


def test_the_clock_skew_is_configurable(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock, clock_skew_s=0)
    clock.advance(3600)
    assert refused(verifier, sign(rsa_key)) == "token_expired"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
def test_a_token_without_a_required_claim_is_invalid(keys, clock, rsa_key, claim) -> None:
    without: dict[str, Any] = {claim: None}
    assert refused(make_verifier(keys, clock), sign(rsa_key, **without)) == "token_invalid"


@pytest.mark.parametrize("bad", [{"exp": "tomorrow"}, {"iat": True}, {"sub": " "}, {"sub": 7}])
def test_claims_of_the_wrong_type_are_invalid(keys, clock, rsa_key, bad) -> None:
    assert refused(make_verifier(keys, clock), sign(rsa_key, **bad)) == "token_invalid"


# --------------------------------------------------------------------------- iss, aud


def test_a_token_for_another_audience_is_refused(keys, clock, rsa_key) -> None:
    assert refused(make_verifier(keys, clock), sign(rsa_key, aud="other")) == "token_audience"


def test_a_token_from_another_issuer_is_refused(keys, clock, rsa_key) -> None:
    token = sign(rsa_key, iss="https://evil.example")
    assert refused(make_verifier(keys, clock), token) == "token_issuer"


def test_the_signature_is_checked_before_the_claims(keys, clock, rsa_key_2) -> None:
    # A forged token (wrong key) with a wrong audience learns only "bad signature".
    token = sign(rsa_key_2, aud="other", iss="https://evil.example")
    assert refused(make_verifier(keys, clock), token) == "token_signature"


# --------------------------------------------------------------------------- forgeries


def test_alg_none_is_refused(keys, clock) -> None:
    header = b64(json.dumps({"alg": "none", "kid": "k1", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    verifier = make_verifier(keys, clock)
    assert refused(verifier, f"{header}.{payload}.") == "token_algorithm"
    assert refused(verifier, jwt.encode(claims(), "", algorithm="none")) == "token_algorithm"
    assert keys.requests == 0, "refused before any key is fetched"


def test_hs256_signed_with_the_public_key_pem_is_refused(keys, clock, rsa_key) -> None:
    # Key confusion: a verifier that let the token choose HS256 would use the public
    # key (which everyone has) as the HMAC secret, and accept this forgery.
    secret = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(sub="admin")).encode())
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    assert refused(make_verifier(keys, clock), f"{header}.{payload}.{signature}") == (
        "token_algorithm"
    )


def test_a_tampered_payload_is_refused(keys, clock, rsa_key) -> None:
    header, _payload, signature = sign(rsa_key).split(".")
    forged = b64(json.dumps(claims(sub="admin", ragline_role="owner")).encode())
    assert refused(make_verifier(keys, clock), f"{header}.{forged}.{signature}") == (
        "token_signature"
    )


def test_an_algorithm_the_key_is_not_for_is_refused(keys, clock, rsa_key, ec_key) -> None:
    # RS512 allowed by configuration, but key k1 says it is an RS256 key.
    verifier = make_verifier(keys, clock, algorithms=["RS256", "RS512", "ES256"])
    assert refused(verifier, sign(rsa_key, algorithm="RS512")) == "token_algorithm"
    # An ES256 token naming the RSA key: the key type does not fit the algorithm.
    keys.publish({k: v for k, v in rsa_jwk(rsa_key, "k1").items() if k != "alg"})
    verifier = make_verifier(keys, clock, algorithms=["RS256", "ES256"])
    assert refused(verifier, sign(ec_key, algorithm="ES256")) == "token_algorithm"


@pytest.mark.parametrize("token", ["abc", "a.b.c", "e30.e30.", "x" * 20_000])
def test_garbage_is_an_invalid_token(keys, clock, token) -> None:
    assert refused(make_verifier(keys, clock), token) in ("token_invalid", "token_algorithm")


def test_a_token_naming_no_key_is_invalid(keys, clock, rsa_key) -> None:
    assert refused(make_verifier(keys, clock), sign(rsa_key, kid=None)) == "token_invalid"


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], [], ["RS256", "HS512"]])
def test_a_verifier_refuses_symmetric_or_unknown_algorithms(keys, clock, algorithms) -> None:
    with pytest.raises(ValueError):
        make_verifier(keys, clock, algorithms=algorithms)


def test_a_verifier_needs_issuer_audience_and_an_http_keys_url(clock) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(issuer="", audience="a", keys_url="https://k")
    with pytest.raises(ValueError):
        TokenVerifier(issuer="i", audience="", keys_url="https://k")
    with pytest.raises(ValueError):
        TokenVerifier(issuer="i", audience="a", keys_url="file:///etc/passwd")


# --------------------------------------------------------------------------- missing


def test_a_missing_token_is_refused(keys, clock) -> None:
    verifier = make_verifier(keys, clock)
    assert refused(verifier, None) == "token_missing"
    assert refused(verifier, "") == "token_missing"


def test_bearer_token_reads_the_authorization_header() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer   abc ") == "abc"
    for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer  "):
        with pytest.raises(UnauthenticatedError) as caught:
            bearer_token(header)
        assert caught.value.code == "token_missing"


def test_unauthenticated_is_a_401_with_a_bearer_challenge() -> None:
    missing = UnauthenticatedError("no token", code="token_missing")
    expired = UnauthenticatedError("expired", code="token_expired")
    assert status_of(missing) == status_of(expired) == 401
    assert bearer_challenge(missing) == 'Bearer realm="ragline"'
    assert 'error="invalid_token"' in bearer_challenge(expired)
    assert "token_expired" in bearer_challenge(expired)


# --------------------------------------------------------------------------- keys


def test_keys_are_fetched_once_per_max_age_window(keys, clock, rsa_key) -> None:
    keys.cache_control = "public, max-age=120"
    verifier = make_verifier(keys, clock)
    token = sign(rsa_key, exp=int(T0) + 100_000)
    for _ in range(5):
        verifier.verify(token)
    assert keys.requests == 1
    clock.advance(119)
    verifier.verify(token)
    assert keys.requests == 1, "still fresh"
    clock.advance(2)
    verifier.verify(token)
    assert keys.requests == 2, "stale after max-age: fetched again"
    verifier.verify(token)
    assert keys.requests == 2
    assert verifier.key_fetches == 2


def test_without_max_age_keys_stay_fresh_for_the_default_ttl(keys, clock, rsa_key) -> None:
    keys.cache_control = None
    verifier = make_verifier(keys, clock, default_keys_ttl_s=300)
    token = sign(rsa_key, exp=int(T0) + 100_000)
    verifier.verify(token)
    clock.advance(299)
    verifier.verify(token)
    assert keys.requests == 1
    clock.advance(2)
    verifier.verify(token)
    assert keys.requests == 2


def test_a_huge_max_age_is_capped(keys, clock, rsa_key) -> None:
    keys.cache_control = "max-age=31536000"
    verifier = make_verifier(keys, clock)
    token = sign(rsa_key, exp=int(T0) + 10 * 86_400)
    verifier.verify(token)
    clock.advance(86_400 - 1)
    verifier.verify(token)
    assert keys.requests == 1
    clock.advance(2)
    verifier.verify(token)
    assert keys.requests == 2, "24 h at most"


def test_no_cache_still_fetches_at_most_once_per_refetch_interval(keys, clock, rsa_key) -> None:
    keys.cache_control = "no-cache"
    verifier = make_verifier(keys, clock, refetch_interval_s=30)
    token = sign(rsa_key, exp=int(T0) + 10_000)
    for _ in range(10):
        verifier.verify(token)
        clock.advance(1)
    assert keys.requests == 1
    clock.advance(25)
    verifier.verify(token)
    assert keys.requests == 2


def test_an_unknown_kid_is_refused_after_one_refetch(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock)
    verifier.verify(sign(rsa_key))
    clock.advance(60)  # beyond the refetch interval: an unknown kid may refetch once
    assert refused(verifier, sign(rsa_key, kid="k-unknown")) == "token_unknown_key"
    assert keys.requests == 2


def test_a_flood_of_random_kids_cannot_make_it_fetch_per_request(keys, clock, rsa_key) -> None:
    verifier = make_verifier(keys, clock, refetch_interval_s=30)
    verifier.verify(sign(rsa_key))
    clock.advance(31)
    for n in range(50):
        assert refused(verifier, sign(rsa_key, kid=f"random-{n}")) == "token_unknown_key"
        clock.advance(0.1)
    assert keys.requests == 2, "the first unknown kid refetched; the other 49 did not"
    assert verifier.verify(sign(rsa_key)).subject == "user-1"
    assert keys.requests == 2


def test_a_rotated_key_is_picked_up_with_one_refetch(keys, clock, rsa_key, rsa_key_2) -> None:
    verifier = make_verifier(keys, clock)
    assert verifier.verify(sign(rsa_key, kid="k1")).subject == "user-1"
    # The issuer rotates: k2 signs from now on, and k1 leaves the JWKS.
    keys.publish(rsa_jwk(rsa_key_2, "k2"))
    clock.advance(45)

    assert verifier.verify(sign(rsa_key_2, kid="k2", sub="user-2")).subject == "user-2"
    assert keys.requests == 2, "one refetch for the new kid"
    assert refused(verifier, sign(rsa_key, kid="k1")) == "token_unknown_key"
    assert keys.requests == 2, "the old kid is just gone: no further fetch"


def test_concurrent_first_requests_fetch_the_keys_once(keys, clock, rsa_key) -> None:
    keys.delay_s = 0.2  # every thread arrives while the first fetch is in flight
    verifier = make_verifier(keys, clock)
    token = sign(rsa_key)
    results: list[str] = []

    def call() -> None:
        results.append(verifier.verify(token).subject)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == ["user-1"] * 16
    assert keys.requests == 1


def test_keys_of_other_types_and_uses_are_skipped(keys, clock, rsa_key) -> None:
    keys.publish(
        {"kty": "oct", "kid": "k1", "k": b64(b"secret")},  # a shared secret: never
        {**rsa_jwk(rsa_key, "k1"), "use": "enc"},  # an encryption key: never
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "RSA"},  # no kid
    )
    assert refused(make_verifier(keys, clock), sign(rsa_key)) == "token_unknown_key"


# --------------------------------------------------------------------------- failures


def test_a_failing_keys_endpoint_is_unavailable_not_unauthenticated(keys, clock, rsa_key) -> None:
    keys.status = 500
    verifier = make_verifier(keys, clock, refetch_interval_s=30)
    with pytest.raises(UnavailableError) as caught:
        verifier.verify(sign(rsa_key))
    assert caught.value.code == "keys_unavailable"
    assert status_of(caught.value) == 503
    # Failures are not retried on every request either.
    clock.advance(10)
    with pytest.raises(UnavailableError):
        verifier.verify(sign(rsa_key))
    assert keys.requests == 1
    keys.status = 200
    clock.advance(25)
    assert verifier.verify(sign(rsa_key)).subject == "user-1"
    assert keys.requests == 2


def test_an_unreachable_or_garbled_keys_endpoint_is_unavailable(clock, rsa_key) -> None:
    def unreachable(url: str) -> Any:
        raise OSError("connection refused")

    def garbled(url: str) -> Any:
        return 200, {}, b"<html>not json</html>"

    def not_a_jwks(url: str) -> Any:
        return 200, {}, b'{"keys": "nope"}'

    for fetcher in (unreachable, garbled, not_a_jwks):
        verifier = TokenVerifier(
            issuer=ISSUER, audience=AUDIENCE, keys_url="https://keys", fetcher=fetcher, clock=clock
        )
        with pytest.raises(UnavailableError) as caught:
            verifier.verify(sign(rsa_key))
        assert caught.value.code == "keys_unavailable"
        # Where the keys live and how fetching them failed is for the log only.
        assert "https://keys" not in caught.value.message
        assert "refused" not in caught.value.message


def test_the_urllib_fetcher_reaches_a_closed_port_as_unavailable(clock, rsa_key) -> None:
    server = KeysServer()
    url = server.url
    server.close()  # nothing listens there now
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, keys_url=url, clock=clock)
    with pytest.raises(UnavailableError):
        verifier.verify(sign(rsa_key))


def test_cached_keys_outlive_a_keys_outage_for_a_while(keys, clock, rsa_key) -> None:
    keys.cache_control = "max-age=300"
    verifier = make_verifier(keys, clock, stale_if_error_s=3600)
    token = sign(rsa_key, exp=int(T0) + 100_000)
    verifier.verify(token)
    keys.status = 503
    clock.advance(301)
    assert verifier.verify(token).subject == "user-1", "expired keys, endpoint down: kept"
    assert keys.requests == 2
    clock.advance(3600)
    with pytest.raises(UnavailableError):
        verifier.verify(token)


# --------------------------------------------------------------------------- IAP, settings


def test_an_iap_assertion_verifies_with_es256(clock, ec_key, rsa_key) -> None:
    served: list[str] = []

    def fetch(url: str) -> Any:
        served.append(url)
        return (
            200,
            {"Cache-Control": "max-age=600"},
            json.dumps({"keys": [ec_jwk(ec_key, "iap1")]}).encode(),
        )

    configured = settings(auth_iap_audience="/projects/123/global/backendServices/456")
    verifier = iap_verifier(configured, fetcher=fetch, clock=clock)
    assert verifier is not None
    assert verifier.keys_url == IAP_JWKS_URL and verifier.algorithms == ("ES256",)
    assertion = jwt.encode(
        claims(
            iss=IAP_ISSUER,
            aud="/projects/123/global/backendServices/456",
            sub="accounts.google.com:1234",
            email="ada@example.com",
        ),
        ec_key,
        algorithm="ES256",
        headers={"kid": "iap1"},
    )
    token = verifier.verify(assertion)
    assert token.subject == "accounts.google.com:1234" and token.issuer == IAP_ISSUER
    assert served == [IAP_JWKS_URL]
    # An RS256 token is not an IAP assertion, whatever it claims.
    forged = sign(
        rsa_key, kid="iap1", iss=IAP_ISSUER, aud="/projects/123/global/backendServices/456"
    )
    assert refused(verifier, forged) == "token_algorithm"
    assert iap_verifier(settings(auth_iap_audience="")) is None


def test_the_id_token_verifier_follows_the_settings(keys, clock, rsa_key) -> None:
    assert id_token_verifier(settings(auth_issuer="")) is None
    configured = settings(
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_url=keys.url,
        auth_algorithms=["RS256"],
    )
    verifier = id_token_verifier(configured, clock=clock)
    assert verifier is not None
    assert verifier.verify(sign(rsa_key)).subject == "user-1"


def test_auth_algorithms_are_read_from_the_environment_as_json(monkeypatch) -> None:
    monkeypatch.setenv("RAGLINE_AUTH_ALGORITHMS", '["RS256", "ES256"]')
    assert read_settings().auth_algorithms == ["RS256", "ES256"]
