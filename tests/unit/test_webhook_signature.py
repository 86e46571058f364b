"""The receiver-side check refuses replayed, tampered and unsigned deliveries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.errors import InvalidSignatureError
from shared.webhook_signature import new_secret, sign, signed_headers, verify_signature

NOW = 1_800_000_000
BODY = b'{"event_id":"e1","event_type":"version.ready"}'

Change = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]


def test_a_fresh_untouched_delivery_verifies() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "e1", BODY, now=NOW)

    assert verify_signature(secret, headers, BODY, now=NOW + 299) == NOW
    lower = {key.lower(): value for key, value in headers.items()}
    assert verify_signature(secret, lower, BODY, now=NOW) == NOW, "header names are any case"
    assert headers["Ragline-Signature"] == f"v1={sign(secret, NOW, BODY)}"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),  # tampered body
        (lambda h, b: (h, b.replace(b"ready", b"failed")), "does not match"),
        (lambda h, b: ({**h, "Ragline-Timestamp": str(NOW + 1)}, b), "does not match"),
        (lambda h, b: ({**h, "Ragline-Signature": "v1=" + "0" * 64}, b), "does not match"),
        (lambda h, b: ({**h, "Ragline-Signature": "v0=abc"}, b), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "Ragline-Signature"}, b), "not signed"),
        (lambda h, b: ({**h, "Ragline-Timestamp": "soon"}, b), "not a number"),
    ],
)
def test_a_tampered_delivery_fails(change: Change, reason: str) -> None:
    secret = new_secret()
    headers, body = change(signed_headers(secret, "e1", BODY, now=NOW), BODY)

    with pytest.raises(InvalidSignatureError, match=reason):
        verify_signature(secret, headers, body, now=NOW)


@pytest.mark.parametrize("now", [NOW + 301, NOW + 86_400, NOW - 301])
def test_a_replayed_delivery_fails_outside_the_tolerance(now: int) -> None:
    secret = new_secret()
    headers = signed_headers(secret, "e1", BODY, now=NOW)

    with pytest.raises(InvalidSignatureError, match="outside the tolerance"):
        verify_signature(secret, headers, BODY, now=now)


def test_another_secret_fails() -> None:
    headers = signed_headers(new_secret(), "e1", BODY, now=NOW)

    with pytest.raises(InvalidSignatureError):
        verify_signature(new_secret(), headers, BODY, now=NOW)


def test_the_documented_receiver_example_agrees() -> None:
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    namespace: dict[str, object] = {}
    exec(compile(example, "docs/webhooks.md", "exec"), namespace)
    verify = namespace["verify"]
    assert callable(verify)
    secret = new_secret()
    now = time.time()
    headers = signed_headers(secret, "e1", BODY, now=now)

    assert verify(secret, headers, BODY) is True
    assert verify(secret, headers, BODY + b" ") is False, "tampered"
    old = signed_headers(secret, "e1", BODY, now=now - 301)
    assert verify(secret, old, BODY) is False, "replayed"
    assert verify(new_secret(), headers, BODY) is False
