"""Control characters in any request text get a 400 naming the field, never a 5xx.

The rule (``shared/api/text_input.py``): NUL, the other C0 controls but tab and line
breaks, DEL and lone surrogates are rejected wherever a request carries text.
"""

from __future__ import annotations

import io
import json

import pytest

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of


def assert_invalid(response: object, field: str) -> None:
    status = getattr(response, "status_code", None)
    body = body_of(response)  # type: ignore[arg-type]
    assert status == 400, body
    assert body["error"]["code"] == "invalid_input", body
    assert field in body["error"]["message"], body


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\x7f", "\ud800"])
def test_a_question_with_a_control_character_is_rejected(
    clean_stack: LocalStack, character: str
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("text")
    body = {"knowledge_base_ids": [kb["id"]], "question": f"what{character}?"}
    # json.dumps writes the character escaped (\\u0000), as any JSON client does.
    response = api.post("/v1/ask", data=json.dumps(body), content_type="application/json")
    assert_invalid(response, "body.question")


def test_tabs_and_line_breaks_are_text(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("text")
    question = "first line\r\nsecond\tline?"
    response = api.post("/v1/ask", json={"knowledge_base_ids": [kb["id"]], "question": question})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_control_characters_anywhere_in_a_request_are_rejected(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("text")
    assert_invalid(
        api.get("/v1/ask/stream", query_string={"knowledge_base_id": kb["id"], "q": "a\x00b"}),
        "query parameter q",
    )
    assert_invalid(api.get("/v1/workspaces/%00/api-keys"), "path segment workspace")
    assert_invalid(
        api.get("/v1/knowledge-bases", headers={"X-Ragline-Workspace": "a\x00"}),
        "header X-Ragline-Workspace",
    )
    assert_invalid(
        api.post("/v1/ask", json={"knowledge_base_ids": [kb["id"]], "filters": {"a\x01": 1}}),
        "a key of body.filters",
    )
    assert_invalid(
        api.post("/v1/knowledge-bases", json={"name": "ok", "description": "bad\x00"}),
        "body.description",
    )


def test_upload_metadata_with_a_control_character_is_rejected(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("text")
    response = api.post(
        f"/v1/knowledge-bases/{kb['id']}/documents",
        data={"file": (io.BytesIO(b"# A\n\nText."), "a.md"), "metadata": '{"k": "v\\u0000"}'},
    )
    assert_invalid(response, "metadata.k")


def test_json_without_numbers_json_defines_is_rejected(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("text")
    raw = json.dumps({"knowledge_base_ids": [kb["id"]], "question": "q?"})[:-1] + ', "top_k": NaN}'
    response = api.post("/v1/ask", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] == "invalid_json"
