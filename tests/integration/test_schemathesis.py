"""Schemathesis against the local stack, from the stack's own ``/v1/openapi.json``.

Every operation of the document is called with cases schemathesis generates from it,
with a valid token (the local owner's, in a workspace with a knowledge base, a ready
document, an answered turn, a webhook, an evaluation run and an API key, so most path
arguments name something real and the handlers run). No response may be a 5xx, and
every response must keep to the document: a declared status, the declared content
type, a body that validates against its schema (errors included). Deterministic
(derandomized) and bounded (a few examples per operation); DELETE operations run last,
so the seeded resources serve the others first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scripts.localstack.stack import LocalStack
from shared.api.reference import document
from tests.support.api import Api
from tests.support.outbound import allow_loopback
from tests.support.stack import wipe_stack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 16
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# Every operation of the document, DELETEs last.
OPERATIONS = sorted(
    (
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    ),
    key=lambda operation: (operation[0] == "DELETE", operation[1], operation[0]),
)


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> Iterator[dict[str, str]]:
    """Real values for the path arguments; wiped after the module."""
    stack.wait_idle(120)
    wipe_stack(stack)
    api = Api(stack)
    kb = api.create_kb("contract")
    document_ = api.ingest(kb["id"], "guide.md", b"# Guide\n\nThe service restarts nightly.")
    asked = api.post("/v1/ask", json={"knowledge_base_ids": [kb["id"]], "question": "restart?"})
    assert asked.status_code == 200, asked.get_data(as_text=True)
    turn = asked.json or {}
    run = api.post(
        f"/v1/knowledge-bases/{kb['id']}/evaluations",
        json={"questions": [{"question": "When does the service restart?"}]},
    )
    assert run.status_code == 201, run.get_data(as_text=True)
    key = api.post("/v1/workspaces/default/api-keys", json={"name": "contract", "role": "viewer"})
    assert key.status_code == 201, key.get_data(as_text=True)
    with pytest.MonkeyPatch.context() as patch:  # registering checks the URL's address
        allow_loopback(stack, patch)
        hook = api.post(
            f"/v1/knowledge-bases/{kb['id']}/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["version.awaiting_approval"]},
        )
    assert hook.status_code == 201, hook.get_data(as_text=True)
    citations = turn.get("citations") or [{"chunk_id": 1}]
    yield {
        "kb_id": kb["id"],
        "document_id": document_["id"],
        "turn_id": turn["turn_id"],
        "session_id": turn["session_id"],
        "chunk_id": str(citations[0]["chunk_id"]),
        "run_id": (run.json or {})["id"],
        "other_id": (run.json or {})["id"],
        "key_id": (key.json or {})["id"],
        "webhook_id": (hook.json or {})["id"],
        "workspace": stack.settings.default_workspace,
        "member": stack.settings.default_principal,
        "asset": "init.js",
    }
    stack.wait_idle(120)
    wipe_stack(stack)


def _real_body(seeded: dict[str, str]) -> dict[str, Any]:
    """Body fields that name the seeded resources, so the bodies' handlers run too."""
    return {
        "knowledge_base_ids": [seeded["kb_id"]],
        "question": "When does the service restart?",
        "filters": None,
        "session_id": seeded["session_id"],
        "version_id": None,
        "url": "https://example.com/hook",
    }


@pytest.fixture(scope="module")
def api_schema(stack: LocalStack) -> Any:
    """The document as the stack serves it, loaded by schemathesis (which validates it)."""
    return schemathesis.openapi.from_wsgi("/v1/openapi.json", stack.app)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_keeps_to_the_document(
    stack: LocalStack, seeded: dict[str, str], api_schema: Any, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    real = {name: value for name, value in seeded.items() if "{" + name + "}" in path}
    # The question stream names its knowledge bases in the query.
    query = {"knowledge_base_id": [seeded["kb_id"]]} if path == "/v1/ask/stream" else None
    # Mostly real path arguments (the handlers run), else whatever the schema allows; and
    # some cases the schema does not allow (negative), which must get a 4xx, never a 5xx.
    cases = st.one_of(
        operation.as_strategy(path_parameters=real, query=query),
        operation.as_strategy(path_parameters=real),
        operation.as_strategy(),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real),
    )
    auth = {"Authorization": f"Bearer {Api(stack).token}"}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, real_body=st.booleans())
    def keeps_to_it(case: Any, real_body: bool) -> None:
        if real_body and isinstance(case.body, dict):
            case.body.update({k: v for k, v in _real_body(seeded).items() if k in case.body})
        response = case.call_and_validate(headers=auth, checks=CHECKS)
        statuses[response.status_code] += 1

    statuses: Counter[int] = Counter()
    keeps_to_it()
    # What the cases got, shown with -s: most operations should succeed somewhere.
    print(method, path, dict(statuses))
