"""Every route that changes something, answers or retrieves declares its audit action."""

from __future__ import annotations

import re

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.api.audit import client_address, outcome_of
from tests.support.routes import ALL_ROUTES

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Questions and retrievals are audited though they are reads.
ASKING = frozenset({"GET /v1/ask/stream"})
ACTION = re.compile(r"^[a-z_]+\.[a-z_]+$")


def test_every_mutation_question_and_retrieval_route_names_its_action() -> None:
    missing = [
        f"{route.method} {route.path}"
        for route in ALL_ROUTES
        if (route.method in MUTATING or f"{route.method} {route.path}" in ASKING)
        and not route.audit
    ]
    assert missing == [], f"routes without an audit action: {missing}"


def test_actions_are_noun_dot_verb_and_reads_declare_none() -> None:
    for route in ALL_ROUTES:
        key = f"{route.method} {route.path}"
        if route.audit:
            assert ACTION.match(route.audit), key
        elif route.method == "GET":
            assert key not in ASKING


def test_outcomes_by_status() -> None:
    assert [outcome_of(s) for s in (200, 201, 204, 302)] == ["succeeded"] * 4
    assert [outcome_of(s) for s in (401, 403, 404, 429)] == ["denied"] * 4
    assert [outcome_of(s) for s in (400, 409, 413, 500, 503)] == ["failed"] * 5


def _request(forwarded: str | None) -> Request:
    headers = [("X-Forwarded-For", forwarded)] if forwarded is not None else []
    environ = EnvironBuilder(headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.9"})
    return Request(environ.get_environ())


def test_client_address_is_the_hop_the_load_balancer_saw() -> None:
    # Google's load balancer appends "<client>, <itself>" to what the client sent.
    assert client_address(_request("6.6.6.6, 203.0.113.7, 10.0.0.1")) == "203.0.113.7"
    assert client_address(_request("203.0.113.7, 10.0.0.1")) == "203.0.113.7"
    assert client_address(_request("203.0.113.8")) == "203.0.113.8"  # no balancer
    assert client_address(_request(None)) == "127.0.0.9"
    assert client_address(_request(" , ")) == "127.0.0.9"
