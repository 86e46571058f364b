"""Inputs the API fuzz test (``test_api_fuzz.py``) once answered with a 5xx, pinned down.

Each gets a 4xx in the API's error format now.
"""

from __future__ import annotations

import base64

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of


def test_a_citation_id_of_non_ascii_digits_is_not_found(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    for chunk_id in ("²", "١٢", "9" * 40):
        response = api.get(f"/v1/citations/{chunk_id}/viewer")
        assert response.status_code == 404, (chunk_id, response.get_data(as_text=True))
        assert body_of(response)["error"]["code"] == "citation_not_found"


def test_a_page_token_beyond_any_listing_is_invalid(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    api.create_kb("pages")
    for offset in ("99999999999999999999999999", "1e400", "Infinity", "true"):
        token = base64.urlsafe_b64encode(f'{{"o": {offset}}}'.encode()).decode()
        response = api.get(
            "/v1/knowledge-bases/pages/documents", query_string={"page_token": token}
        )
        assert response.status_code in (200, 400), (offset, response.get_data(as_text=True))
        if response.status_code == 400:
            assert body_of(response)["error"]["code"] == "invalid_page_token"
    big = base64.urlsafe_b64encode(b'{"o": 99999999999999999999999999}').decode()
    response = api.get("/v1/knowledge-bases/pages/documents", query_string={"page_token": big})
    assert response.status_code == 400


def test_an_event_id_beyond_a_bigint_is_invalid(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("events")
    document = api.ingest(kb["id"], "a.md", b"# A\n\nText.")
    path = f"/v1/documents/{document['id']}/events"
    for where in ({"query_string": {"after": "9" * 40}}, {"headers": {"Last-Event-ID": "-1"}}):
        response = api.get(path, **where)
        assert response.status_code == 400, (where, response.get_data(as_text=True))
        assert body_of(response)["error"]["code"] == "invalid_parameter"
    assert api.get(path, query_string={"after": "0"}).status_code == 200
