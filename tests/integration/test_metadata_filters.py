"""Metadata filters (eq, in, numeric and date ranges, exists) applied inside SQL.

Each operator runs against the real database through ``POST /v1/retrieve`` and
``POST /v1/ask``; the expected documents follow from the metadata set below.
"""

from __future__ import annotations

from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of

# Every document says the same thing, so only the filter decides which are found.
TEXT = "The harbour office reports cargo volumes, vessel arrivals and berth usage for the period."

METADATA: dict[str, dict[str, Any]] = {
    "a.md": {"kind": "10-Q", "year": 2022, "ticker": "AAPL", "period": "2022-06-30"},
    "b.md": {"kind": "10-Q", "year": 2023, "ticker": "MSFT", "period": "2023-03-31T00:00:00Z"},
    "c.md": {"kind": "10-K", "year": 2024.5, "ticker": "AMZN", "reviewed": False},
    "d.md": {
        "kind": "10-Q",
        "year": "2024",
        "ticker": "AAPL",
        "period": "not a date",
        "tags": ["audit", "q2"],
        "reviewed": None,
    },
}


@pytest.fixture
def filtered_kb(clean_stack: LocalStack) -> tuple[Api, str, dict[str, str]]:
    api = Api(clean_stack)
    kb = api.create_kb("filters")
    ids: dict[str, str] = {}
    for name in METADATA:
        ids[name] = api.upload(kb["id"], name, TEXT.encode())["document_id"]
    clean_stack.wait_idle(120)
    for name, metadata in METADATA.items():
        response = api.patch(f"/v1/documents/{ids[name]}", json={"metadata": metadata})
        assert response.status_code == 200, response.get_data(as_text=True)
    return api, kb["id"], ids


def _found(api: Api, kb_id: str, metadata: Any) -> set[str]:
    response = api.post(
        "/v1/retrieve",
        json={
            "knowledge_base_ids": [kb_id],
            "query": "cargo volumes vessel arrivals",
            "top_k": 20,
            "filters": {"metadata": metadata},
        },
    )
    return {p["document_id"] for p in body_of(response)["passages"]}


CASES: list[tuple[Any, set[str]]] = [
    ({"kind": "10-Q"}, {"a.md", "b.md", "d.md"}),  # bare value: equal
    ({"kind": {"eq": "10-K"}}, {"c.md"}),
    ({"year": {"eq": 2023}}, {"b.md"}),  # the number, not the string "2024" of d
    ({"tags": ["q2"]}, {"d.md"}),  # the old containment form, arrays included
    ({"ticker": {"in": ["AAPL", "AMZN"]}}, {"a.md", "c.md", "d.md"}),
    ({"year": {"in": [2022, 2024.5]}}, {"a.md", "c.md"}),
    ({"year": {"gte": 2023}}, {"b.md", "c.md"}),  # d's "2024" is a string: no match
    ({"year": {"gt": 2022, "lt": 2024}}, {"b.md"}),
    ({"year": {"lte": 2024.5}}, {"a.md", "b.md", "c.md"}),
    ({"period": {"gte": "2023-01-01"}}, {"b.md"}),  # a timestamp compares by its day
    ({"period": {"lt": "2023-03-31"}}, {"a.md"}),  # "not a date" never matches
    ({"period": {"lte": "2023-03-31"}}, {"a.md", "b.md"}),
    ({"reviewed": {"exists": True}}, {"c.md", "d.md"}),  # null and false exist
    ({"reviewed": {"exists": False}}, {"a.md", "b.md"}),
    ({"kind": "10-Q", "ticker": {"in": ["AAPL"]}, "period": {"exists": True}}, {"a.md", "d.md"}),
    ({"kind": "10-Q", "year": {"gte": 2022}, "reviewed": {"exists": False}}, {"a.md", "b.md"}),
    ({"missing": {"gte": 1}}, set()),
]


def test_each_operator_selects_exactly_its_documents(
    filtered_kb: tuple[Api, str, dict[str, str]],
) -> None:
    api, kb_id, ids = filtered_kb
    names = {document_id: name for name, document_id in ids.items()}
    assert {names[d] for d in _found(api, kb_id, None)} == set(METADATA)
    for metadata, expected in CASES:
        assert {names[d] for d in _found(api, kb_id, metadata)} == expected, metadata


def test_ask_answers_only_from_the_documents_each_operator_selects(
    filtered_kb: tuple[Api, str, dict[str, str]],
) -> None:
    api, kb_id, ids = filtered_kb
    names = {document_id: name for name, document_id in ids.items()}
    for metadata, expected in CASES:
        body = body_of(
            api.post(
                "/v1/ask",
                json={
                    "knowledge_base_ids": [kb_id],
                    "question": "What does the harbour office report about cargo volumes?",
                    "filters": {"metadata": metadata},
                },
            )
        )
        cited = {names[c["document_id"]] for c in body["citations"]}
        if expected:
            assert cited and cited <= expected, (metadata, cited)
        else:
            assert cited == set() and body["citations"] == [], metadata


def test_filters_combine_with_document_ids_and_apply_to_ask(
    filtered_kb: tuple[Api, str, dict[str, str]],
) -> None:
    api, kb_id, ids = filtered_kb
    response = api.post(
        "/v1/retrieve",
        json={
            "knowledge_base_ids": [kb_id],
            "query": "cargo volumes",
            "filters": {
                "document_ids": [ids["a.md"], ids["c.md"]],
                "metadata": {"year": {"gte": 2023}},
            },
        },
    )
    assert {p["document_id"] for p in body_of(response)["passages"]} == {ids["c.md"]}

    asked = api.post(
        "/v1/ask",
        json={
            "knowledge_base_ids": [kb_id],
            "question": "What does the harbour office report about cargo volumes?",
            "filters": {"metadata": {"ticker": {"in": ["MSFT"]}}},
        },
    )
    body = body_of(asked)
    assert body["citations"], body
    assert {c["document_id"] for c in body["citations"]} == {ids["b.md"]}
    # Regenerate replays the stored filter.
    again = body_of(api.post(f"/v1/turns/{body['turn_id']}/regenerate"))
    assert {c["document_id"] for c in again["citations"]} == {ids["b.md"]}


INVALID: list[Any] = [
    {"year": {"gte": "soon"}},
    {"year": {"gte": True}},
    {"year": {"gte": 2023, "lt": "2024-01-01"}},
    {"ticker": {"in": []}},
    {"ticker": {"in": [{"nested": 1}]}},
    {"reviewed": {"exists": "yes"}},
    {"year": {"gte": 2023, "year": 2024}},
    {"year": {"eq": None}},
    {f"k{n}": n for n in range(40)},
    {"": 1},
]


def test_invalid_filters_are_refused_before_any_search(
    filtered_kb: tuple[Api, str, dict[str, str]],
) -> None:
    api, kb_id, _ = filtered_kb
    for metadata in INVALID:
        for path, field in (("/v1/retrieve", "query"), ("/v1/ask", "question")):
            response = api.post(
                path,
                json={
                    "knowledge_base_ids": [kb_id],
                    field: "cargo",
                    "filters": {"metadata": metadata},
                },
            )
            assert response.status_code == 400, (metadata, response.get_data(as_text=True))
            assert body_of(response)["error"]["code"] == "invalid_filter"
    turns = api.stack.database.scalar("SELECT count(*) FROM chat_turns")
    assert turns == 0
