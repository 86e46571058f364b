"""No 5xx for any input: every route of every HTTP function, fuzzed with hypothesis.

Requests carry a valid token (the local owner's) and go to the stack's one origin, so
they reach the handlers: random JSON bodies, query strings, path segments and headers,
with unicode, control characters (NUL included), lone surrogates, huge and empty values,
and multipart uploads with random file names. Any response is fine but a 5xx; a 4xx
must be in the API's error format. The examples are derandomized (the same every run)
and bounded (30 per route), so the whole file takes about a minute.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from scripts.localstack.stack import LocalStack
from shared.api import (
    answer,
    evaluation,
    identity,
    limits,
    manage,
    openai_compat,
    sources,
    upload,
    webhooks,
)
from shared.api.http import Route
from tests.support.api import Api
from tests.support.outbound import allow_loopback
from tests.support.routes import ALL_ROUTES
from tests.support.sources import source_bucket
from tests.support.stack import wipe_stack

# Deletes last: the seeded knowledge base, document and workspace serve the other
# routes' examples first. Setting the limits is later still: a generated limit of one
# request a minute would refuse every example after it.
ROUTES: list[Route] = sorted(
    ALL_ROUTES,
    key=lambda route: (
        route.path.endswith("/limits") and route.method == "PUT",
        route.method == "DELETE",
    ),
)
# Each body's model, so a generated body can hold exactly its fields (extra fields are
# rejected before a handler does anything else).
BODIES: dict[str, type[BaseModel]] = {
    "POST /v1/knowledge-bases": manage.CreateKnowledgeBase,
    "PATCH /v1/knowledge-bases/<kb_id>": manage.UpdateKnowledgeBase,
    "POST /v1/ask": answer.AskBody,
    "POST /v1/retrieve": answer.AskBody,
    "POST /v1/openai/chat/completions": openai_compat.ChatBody,
    "POST /v1/turns/<turn_id>/feedback": answer.FeedbackBody,
    "POST /v1/knowledge-bases/<kb_id>/uploads": upload.SignedUploadRequest,
    "POST /v1/stream-tickets": identity.TicketBody,
    "POST /v1/workspaces": identity.WorkspaceBody,
    "PATCH /v1/workspaces/<workspace>": identity.WorkspaceBody,
    "POST /v1/workspaces/<workspace>/members": identity.InviteBody,
    "PATCH /v1/workspaces/<workspace>/members/<member>": identity.MemberBody,
    "POST /v1/workspaces/<workspace>/api-keys": identity.ApiKeyBody,
    "POST /v1/knowledge-bases/<kb_id>/access-requests": identity.AccessRequestBody,
    "PUT /v1/knowledge-bases/<kb_id>/grants/<member>": identity.GrantBody,
    "POST /v1/knowledge-bases/<kb_id>/webhooks": webhooks.WebhookBody,
    "POST /v1/knowledge-bases/<kb_id>/evaluations": evaluation.EvaluationBody,
    "PATCH /v1/knowledge-bases/<kb_id>/webhooks/<webhook_id>": webhooks.WebhookPatch,
    "POST /v1/knowledge-bases/<kb_id>/sources": sources.CreateSource,
    "PATCH /v1/sources/<source_id>": sources.UpdateSource,
    "PATCH /v1/documents/<document_id>": manage.UpdateDocument,
    "POST /v1/documents/<document_id>/approve": manage.ApproveDocument,
    "PUT /v1/workspaces/<workspace>/limits": limits.LimitsBody,
}
PATH_ARG = re.compile(r"<(\w+)>")

# Text meant to break things: controls, NUL, lone surrogates, other scripts, emoji,
# SQL and path syntax, and very long or empty values.
NASTY = st.sampled_from(
    [
        "how does the service restart?",
        "",
        " ",
        "\x00",
        "a\x00b",
        "\x1b[31m",
        "\ud800",
        "line\r\nbreak",
        "../../etc/passwd",
        "'; DROP TABLE chunks; --",
        "%00",
        "ß" * 400,
        "😀" * 300,
        "x" * 100_000,
        "١٢٣",
        "²",
        "9" * 40,
        "-1",
        "0",
        "NaN",
        "null",
    ]
)
TEXT = st.one_of(NASTY, st.text(max_size=40), st.text(st.characters(codec="utf-8"), max_size=8))
NUMBER = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
# Numbers as text, as query parameters and path segments carry them.
NUMERIC = st.one_of(NUMBER.map(str), st.sampled_from(["1", "50", "0x10", " 7 ", "1_000", "1e3"]))
# Page tokens this API would not issue: base64 of any JSON, or not base64 at all.
PAGE_TOKEN = st.one_of(
    JSON.map(lambda value: json.dumps({"o": value})),
    JSON.map(json.dumps),
).map(lambda raw: base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode())
PARAM_VALUE = st.one_of(TEXT, NUMERIC, PAGE_TOKEN)
# The fields the routes' bodies and queries name, so values reach their validation.
FIELDS = [
    "name", "description", "embedding_model", "embedding_dimensions", "chunk_tokens",
    "chunk_overlap", "routing", "knowledge_base_ids", "question", "query", "top_k",
    "filters", "session_id", "rating", "comment", "filename", "content_type", "size",
    "metadata", "email", "role", "limited", "access", "reason", "path", "expires_in_days",
    "type", "config", "schedule", "paused",
]  # fmt: skip
PARAMS = [
    "knowledge_base_id", "q", "question", "session_id", "top_k", "document_id", "limit",
    "offset", "page_token", "status", "timeout", "after", "ticket", "actor", "action",
    "target", "outcome", "since", "until", "cursor", "format",
]  # fmt: skip
# What a multipart form can carry: text that UTF-8 can encode (no lone surrogates).
FORM_TEXT = TEXT.map(lambda text: text.encode("utf-8", "replace").decode())
# Latin-1 without CR/LF: what an HTTP client can put in a header at all.
HEADER = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=60)


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> Iterator[dict[str, str]]:
    """A knowledge base, a ready document and an answered turn, so ids can be real.

    Shared by every route's test (what the fuzzing changes is fine to keep), then wiped.
    """
    stack.wait_idle(120)
    wipe_stack(stack)
    api = Api(stack)
    kb = api.create_kb("fuzz")
    document = api.ingest(kb["id"], "guide.md", b"# Guide\n\nThe service restarts nightly.")
    asked = api.post("/v1/ask", json={"knowledge_base_ids": [kb["id"]], "question": "restart?"})
    assert asked.status_code == 200, asked.get_data(as_text=True)
    turn = asked.json or {}
    with pytest.MonkeyPatch.context() as patch:  # registering checks the URL's address
        allow_loopback(stack, patch)
        hook = api.post(
            f"/v1/knowledge-bases/{kb['id']}/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["version.awaiting_approval"]},
        )
        bucket = source_bucket(stack, patch)
        source = api.post(
            f"/v1/knowledge-bases/{kb['id']}/sources",
            json={"type": "gcs", "config": {"uri": f"gs://{bucket}/fuzz/"}, "paused": True},
        )
    assert hook.status_code == 201, hook.get_data(as_text=True)
    assert source.status_code == 201, source.get_data(as_text=True)
    yield {
        "webhook_id": (hook.json or {})["id"],
        "source_id": (source.json or {})["id"],
        "kb_id": kb["id"],
        "document_id": document["id"],
        "turn_id": turn["turn_id"],
        "session_id": turn["session_id"],
        "workspace": "default",
        "member": "local",
    }
    stack.wait_idle(120)
    wipe_stack(stack)


def plausible(seeds: dict[str, str]) -> dict[str, st.SearchStrategy[Any]]:
    """For each body field, values that pass its validation (or nearly), so handlers run."""
    return {
        "knowledge_base_ids": st.just([seeds["kb_id"]]),
        "question": TEXT,
        "query": TEXT,
        "top_k": st.integers(-2, 60),
        "name": TEXT.map(lambda text: "fuzz-" + text[:20]),
        "session_id": st.just(seeds["session_id"]),
        "rating": st.sampled_from(["up", "down"]),
        "role": st.sampled_from(["owner", "admin", "editor", "viewer"]),
        "access": st.sampled_from(["read", "write"]),
        "email": TEXT.map(lambda text: f"{text[:10]}@example.com"),
        "content_type": st.just("text/markdown"),
        "size": st.integers(),
        "filters": st.fixed_dictionaries(
            {},
            optional={
                "document_ids": st.lists(st.one_of(st.just(seeds["document_id"]), TEXT)),
                "metadata": st.dictionaries(TEXT, SCALAR, max_size=3),
                "min_similarity": NUMBER,
            },
        ),
        "metadata": st.dictionaries(TEXT, TEXT, max_size=3),
        "path": st.sampled_from(["/v1/ask/stream", f"/v1/documents/{seeds['document_id']}/events"]),
        "type": st.sampled_from(["gcs", "url", "ftp"]),
        "config": st.one_of(
            st.dictionaries(TEXT, SCALAR, max_size=3),
            st.fixed_dictionaries({"uri": TEXT.map(lambda text: f"gs://{text[:30]}")}),
        ),
        "schedule": st.one_of(st.none(), st.fixed_dictionaries({"every": TEXT})),
    }


def segment(draw: st.DrawFn, real: str | None) -> str:
    """A path segment: mostly the real id or name (so handlers run), else anything."""
    # Small integers are drawn most often: 0..2 take the real one.
    if real and draw(st.integers(0, 3)) < 3:
        return real
    return draw(st.one_of(TEXT.filter(bool), NUMERIC.filter(bool)))


@st.composite
def requests(draw: st.DrawFn, route: Route, seeds: dict[str, str]) -> dict[str, Any]:
    """A request to ``route``: path arguments, query, headers and body."""
    path = route.path
    for name in PATH_ARG.findall(route.path):
        value = segment(draw, seeds.get(name))
        path = path.replace(f"<{name}>", quote(value.encode("utf-8", "surrogatepass"), safe=""))
    query = draw(st.dictionaries(st.sampled_from(PARAMS), PARAM_VALUE, max_size=4))
    if draw(st.integers(0, 3)) < 3:  # what the question stream needs, to pass validation
        query.update(knowledge_base_id=seeds["kb_id"], q=draw(TEXT))
    if route.path.endswith("/events"):
        query["timeout"] = "1"  # a progress stream of a busy document waits this long
    headers: dict[str, str] = {}
    # Optional headers: mostly absent, so most requests act in the seeded workspace.
    optional_headers = st.fixed_dictionaries(
        {}, optional={"X-Ragline-Workspace": HEADER, "Last-Event-ID": st.one_of(HEADER, NUMERIC)}
    )
    if draw(st.integers(0, 3)) == 3:
        headers.update(draw(optional_headers))
    if draw(st.booleans()):
        headers["Accept"] = "text/event-stream"
    request: dict[str, Any] = {
        "method": route.method,
        "path": path,
        "query": query,
    }
    if route.method in ("POST", "PATCH", "PUT"):
        if route.path.endswith("/documents") and draw(st.booleans()):
            request["form"] = {
                "file": (io.BytesIO(draw(st.binary(max_size=64))), draw(FORM_TEXT)),
                "metadata": draw(st.one_of(FORM_TEXT, JSON.map(json.dumps))),
            }
        else:
            model = BODIES.get(f"{route.method} {route.path}")
            fields = list(model.model_fields) if model else FIELDS
            # The question is optional in the model (retrieve takes "query") but needed.
            required = [
                f
                for f in fields
                if model and (model.model_fields[f].is_required() or f == "question")
            ]
            likely = plausible(seeds)
            body = draw(
                st.one_of(
                    st.fixed_dictionaries(
                        {f: likely.get(f, JSON) for f in required},
                        optional={f: likely.get(f, JSON) for f in fields if f not in required},
                    ),
                    st.fixed_dictionaries(
                        {}, optional={f: st.one_of(likely.get(f, JSON), JSON) for f in fields}
                    ),
                    st.fixed_dictionaries({}, optional={f: JSON for f in FIELDS}),
                    JSON,
                    st.binary(max_size=32).map(lambda raw: raw.decode("latin-1")),
                )
            )
            request["data"] = body if isinstance(body, str) else json.dumps(body)
            headers["Content-Type"] = "application/json"
    request["headers"] = headers
    return request


def send(api: Api, request: dict[str, Any]) -> tuple[int, str, bytes]:
    """Send it; return the status, the content type and the whole body (streams read)."""
    query = {
        name: value.encode("utf-8", "surrogatepass") for name, value in request["query"].items()
    }
    kwargs: dict[str, Any] = {"query_string": urlencode(query), "headers": request["headers"]}
    if "form" in request:
        kwargs["data"] = request["form"]
    elif "data" in request:
        kwargs["data"] = request["data"].encode("utf-8", "surrogatepass")
    response = api.client.open(
        request["path"],
        method=request["method"],
        headers={**api.headers, **kwargs.pop("headers")},
        **kwargs,
    )
    return response.status_code, response.mimetype or "", response.get_data()


def test_the_bodies_are_the_ones_the_routes_declare() -> None:
    # The routes' models are what the OpenAPI document shows: the fuzzer draws the same.
    declared = {
        f"{route.method} {route.path}": route.body
        for route in ALL_ROUTES
        if route.body is not None and route.body_media_type == "application/json"
    }
    assert declared == BODIES


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_no_input_gets_a_5xx(stack: LocalStack, seeded: dict[str, str], route: Route) -> None:
    api = Api(stack)
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=30,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(route, seeded))
    def no_5xx(request: dict[str, Any]) -> None:
        status, mimetype, body = send(api, request)
        statuses[status] += 1
        assert status < 500, (request, body[:300])
        # Every error is in the API's format, even the framework's own 404 for a path
        # its routing cannot match (a line break in a segment).
        if status >= 400:
            assert mimetype == "application/json", (request, body[:300])
            error = json.loads(body)["error"]
            assert error["code"] and error["message"], body

    no_5xx()
    # What the examples got, shown with -s: most should get past validation somewhere.
    print(route.method, route.path, dict(statuses))
