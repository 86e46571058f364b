"""Letting the stack's outbound requests reach the loopback interface, for one test."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.net.client import SafeHttpClient
from shared.net.guard import UrlGuard

LOOPBACK = ["127.0.0.1/32"]


def allow_loopback(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
    """Allow-list 127.0.0.1 for webhooks (the test-only setting), with other ``settings``.

    Undone when the test ends: the client first, since what the monkeypatch restores
    after the test is built from the stack's settings.
    """
    runtime = stack.runtime
    monkeypatch.setattr(runtime, "outbound", SafeHttpClient(UrlGuard(allow_networks=LOOPBACK)))
    changed = runtime.settings.model_copy(update={"outbound_allow_networks": LOOPBACK, **settings})
    monkeypatch.setattr(runtime, "settings", changed)


def loopback_client(**options: Any) -> SafeHttpClient:
    """A guarded client that may also reach 127.0.0.1 (a test's own loopback server).

    Nothing else is allow-listed: every other non-public address is still refused.
    """
    return SafeHttpClient(UrlGuard(allow_networks=LOOPBACK), **options)
