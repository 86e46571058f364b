"""Inputs the API fuzz test (``test_api_fuzz.py``) once answered with a 5xx, pinned down.

Each gets a 4xx in the API's error format now.
"""

from __future__ import annotations

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of


def test_a_citation_id_of_non_ascii_digits_is_not_found(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    for chunk_id in ("²", "١٢", "9" * 40):
        response = api.get(f"/v1/citations/{chunk_id}/viewer")
        assert response.status_code == 404, (chunk_id, response.get_data(as_text=True))
        assert body_of(response)["error"]["code"] == "citation_not_found"
