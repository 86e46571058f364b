"""Signing webhook deliveries, and the check a receiver runs (:func:`verify_signature`).

Each delivery carries three headers::

    Ragline-Event-Id:   the event's id (deliveries are at least once: dedupe on it)
    Ragline-Timestamp:  when the delivery was signed, Unix seconds
    Ragline-Signature:  v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

The timestamp is inside the signed text, so a receiver that also refuses timestamps
older than a few minutes (``tolerance_s``) refuses a delivery replayed later, and any
change to the body or the timestamp breaks the signature. ``docs/webhooks.md`` shows
the same check in plain Python for receivers that do not use this package.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from shared.errors import InvalidSignatureError

EVENT_ID_HEADER = "Ragline-Event-Id"
TIMESTAMP_HEADER = "Ragline-Timestamp"
SIGNATURE_HEADER = "Ragline-Signature"
SCHEME = "v1"
#: Seconds a delivery stays acceptable after it was signed (and before, for clock skew).
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    """A new webhook signing secret (256 bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` under ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, event_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The headers that sign one delivery of ``body``."""
    timestamp = int(time.time() if now is None else now)
    return {
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{SCHEME}={sign(secret, timestamp, body)}",
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a delivery as a receiver should, before trusting or acting on it.

    Args:
        secret: The webhook's secret (shown once, when it was created).
        headers: The request's headers (any case).
        body: The request's raw body, exactly as received (not re-serialised JSON).
        tolerance_s: How far the signed timestamp may be from ``now``.
        now: The current Unix time (default: the clock).

    Returns:
        The signed timestamp.

    Raises:
        InvalidSignatureError: A header is missing or malformed, the timestamp is
            outside the tolerance (a replay), or no ``v1`` signature matches (tampered
            body or timestamp, or another secret).
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not stamp or not signature:
        raise InvalidSignatureError("the delivery is not signed")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignatureError("the signature timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignatureError("the signature timestamp is outside the tolerance")
    expected = sign(secret, timestamp, body)
    # Several signatures may be sent (e.g. while a secret is rotated): any may match.
    candidates = [
        part.split("=", 1)[1]
        for part in (piece.strip() for piece in signature.split(","))
        if part.startswith(SCHEME + "=")
    ]
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignatureError("the signature does not match")
    return timestamp
