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
