"""The metadata filter language: parsing, validation and the SQL it compiles to."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInputError
from shared.filters import Comparison, parse_metadata_filter
from shared.store.scope import Scope, compile_scope


def test_bare_values_and_eq_are_containment_operators_are_comparisons() -> None:
    parsed = parse_metadata_filter(
        {
            "kind": "10-Q",
            "tags": ["a"],
            "x": {"eq": 3},
            "year": {"gte": 2023, "lt": 2025.5},
            "period": {"gt": "2024-01-31"},
            "ticker": {"in": ["AAPL", 1]},
            "reviewed": {"exists": False},
        }
    )
    assert parsed.contains == {"kind": "10-Q", "tags": ["a"], "x": 3}
    assert parsed.comparisons == (
        Comparison("year", "gte", "2023", "number"),
        Comparison("year", "lt", "2025.5", "number"),
        Comparison("period", "gt", "2024-01-31", "date"),
        Comparison("ticker", "in", '["AAPL", 1]', "json"),
        Comparison("reviewed", "exists", False, "bool"),
    )
    assert not parse_metadata_filter(None)
    assert not parse_metadata_filter({})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"y": {"gte": "2024-02-30"}}, "y.gte: must be a number or an ISO date"),
        ({"y": {"lte": False}}, "y.lte: must be a number or an ISO date"),
        ({"y": {"gte": 1, "lte": "2024-01-01"}}, "all numbers or all ISO dates"),
        ({"y": {"in": []}}, "y.in"),
        ({"y": {"in": list(range(101))}}, "y.in"),
        ({"y": {"exists": 1}}, "y.exists"),
        ({"y": {"gte": 1, "other": 2}}, "mixes operators and keys"),
        ({"y": {"gte": float("nan")}}, "not JSON"),
        ({"y": "x" * 9000}, "8,192 bytes"),
    ],
)
def test_invalid_filters_say_what_is_wrong(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_metadata_filter(raw)
    assert raised.value.code == "invalid_filter"
    assert message in raised.value.message


def test_keys_and_values_reach_sql_only_as_parameters() -> None:
    key = "year'); DROP TABLE documents; --"
    compiled = compile_scope(
        Scope(
            kb_ids=["00000000-0000-0000-0000-000000000001"],
            workspace="default",
            metadata={key: {"gte": 2023}, "t": {"in": ["O'Brien"]}, "kind": "it's"},
        )
    )
    sql = compiled.chunks() + compiled.active_versions() + compiled.workspace_documents()
    for value in ("DROP", "O'Brien", "it's", "2023"):
        assert value not in sql
    assert compiled.params["mk0"] == key
    assert compiled.params["mv0"] == "2023"
    assert compiled.params["mv1"] == '["O\'Brien"]'
    assert compiled.params["meta"] == '{"kind": "it\'s"}'
