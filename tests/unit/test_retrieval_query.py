"""Reading questions (names, "latest", search terms) and fusing rankings."""

from __future__ import annotations

import pytest

from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.query import named_terms, or_query_terms, wants_latest


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("How has Apple's total net sales changed over time?", ["Apple"]),
        ("Examine how Intel's effective tax rate compares", ["Intel"]),
        ("In Amazon's latest 10-Q, how does AWS revenue compare?", ["Amazon", "AWS"]),
        ("AMZN revenue by segment", ["AMZN"]),
        ("Apple's revenue?", ["Apple"]),
        ("Revenue grew? What about Tesla.", ["Tesla"]),
        ("What is the effective tax rate?", []),
        ("Compare Microsoft and NVIDIA in Q3 2023", ["Microsoft", "NVIDIA"]),
    ],
)
def test_named_terms_finds_the_names_a_question_mentions(question: str, names: list[str]) -> None:
    assert named_terms(question) == names


@pytest.mark.parametrize(
    ("question", "latest"),
    [
        ("In Amazon's latest 10-Q, how does revenue split?", True),
        ("the tax rate in the most recent 10-Q", True),
        ("What changed last quarter?", True),
        ("How has revenue changed over time?", False),
        ("What is the latency of the API?", False),
    ],
)
def test_wants_latest(question: str, latest: bool) -> None:
    assert wants_latest(question) is latest


def test_or_query_terms_are_plain_distinct_words() -> None:
    terms = or_query_terms("Apple's net sales & net income: up | down? (10-Q) 'quoted'")
    assert terms == ["apple", "net", "sales", "income", "up", "down", "10-q", "quoted"]
    assert all(set(term) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for term in terms)


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])
    keys = [key for key, _ in fused]
    assert keys[0] == "b"  # ranked 2nd and 1st beats 1st and absent
    assert keys.index("c") < keys.index("a") < keys.index("d")
    scores = dict(fused)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["d"] == pytest.approx(1 / 63)


def test_reciprocal_rank_fusion_weights_and_empty_lists() -> None:
    assert reciprocal_rank_fusion([[], []]) == []
    fused = reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0, 2.0])
    assert [key for key, _ in fused] == ["b", "a"]
