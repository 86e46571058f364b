"""The support check of citations: numbers as values, word overlap, the verdict."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.answering.citations import build_citations, terms
from shared.answering.support import check_support, numbers
from shared.retrieval.types import Passage
from tests.support.passages import passage


def _values(text: str) -> list[Decimal]:
    return [number.value for number in numbers(text)]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("1,234.5 and 1234.5", [Decimal("1234.5"), Decimal("1234.5")]),
        ("$1,234 and \u20ac12 and \u00a37.50", [Decimal(1234), Decimal(12), Decimal("7.50")]),
        ("a loss of (1,234) and -5.5 and \u22123", [Decimal(-1234), Decimal("-5.5"), Decimal(-3)]),
        ("12.5% or 12.5 percent or 7 per cent", [Decimal("12.5"), Decimal("12.5"), Decimal(7)]),
        ("$1.2 billion, 1,200 million, 3 thousand", [Decimal(1_200_000_000)] * 2 + [Decimal(3000)]),
        ("Form 10-Q, Q3, FY2024, COVID-19, item 1A", []),
        ("It rose 5. Then 6.", [Decimal(5), Decimal(6)]),
        ("(in millions) 94,930", [Decimal(94930)]),
    ],
)
def test_numbers_are_normalised_to_values(text: str, values: list[Decimal]) -> None:
    assert _values(text) == values


PASSAGE = (
    "Total net sales were $94,930 million for the quarter ended September 28, 2024, and "
    "the gross margin was 46.2%. Operating expenses were (14,288) million."
)


@pytest.mark.parametrize(
    ("claim", "missing"),
    [
        ("Net sales were $94,930 million in the quarter.", []),
        ("Net sales were 94930 million in the quarter.", []),
        ("Net sales were $94.9 billion in the quarter.", []),  # rounded, other scale
        ("Net sales were $95 billion in the quarter.", []),
        ("Net sales were $97.1 billion in the quarter.", ["$97.1 billion"]),
        ("The gross margin was 46.2 percent.", []),
        ("The gross margin was 48.2%.", ["48.2%"]),
        ("Operating expenses were $14,288 million.", []),  # the table's (14,288)
        ("Operating expenses were $14.3 billion.", []),
        ("Net sales were 94,930 in the quarter ended September 28, 2024.", []),
        ("Net sales rose 12% in the quarter ended September 30, 2024.", ["12%", "30"]),
    ],
)
def test_every_number_of_the_claim_must_be_in_the_passage(claim: str, missing: list[str]) -> None:
    support = check_support([claim], PASSAGE, terms)
    assert list(support.missing_numbers) == missing
    assert support.supported is (not missing)


def test_word_overlap_decides_without_numbers() -> None:
    on_topic = check_support(["Gross margin was stated for the quarter."], PASSAGE, terms)
    assert on_topic.overlap >= 0.5 and on_topic.supported
    off_topic = check_support(["The company hired many engineers in Ireland."], PASSAGE, terms)
    assert off_topic.overlap < 0.5 and not off_topic.supported
    # Only content words count: 3 of "company", "hired", "engineers", "Ireland" are absent.
    assert off_topic.overlap == 0.0
    # The weakest of several claims citing one passage decides.
    both = check_support(
        ["Gross margin was stated for the quarter.", "The company hired engineers."],
        PASSAGE,
        terms,
    )
    assert both.overlap == 0.0


def _passage(n: int, text: str) -> Passage:
    return passage(n, text)


def test_build_citations_flags_each_citation_and_serialises_the_check() -> None:
    passages = [_passage(1, PASSAGE), _passage(2, "Research spending was $8.0 billion.")]
    answer = "Net sales were $94.9 billion [1]. Research spending was $9.5 billion [2]."
    first, second = build_citations(answer, passages)
    assert first.supported and first.to_json()["supported"] is True
    assert not second.supported
    assert second.to_json()["support"] == {"overlap": 1.0, "missing_numbers": ["$9.5 billion"]}


def test_a_claim_ends_at_a_line_break_so_list_items_do_not_borrow_numbers() -> None:
    passages = [
        _passage(1, "Apple Inc. | Q2 2023 Form 10-Q | 16"),
        _passage(2, "Apple Inc. | Q3 2023 Form 10-Q | 17"),
    ]
    answer = (
        'The passages say:\n- "Apple Inc. | Q2 2023 Form 10-Q | 16" [1]\n'
        '- "Apple Inc. | Q3 2023 Form 10-Q | 17" [2]'
    )
    first, second = build_citations(answer, passages)
    assert first.supported and second.supported
    assert second.support is not None and second.support.missing_numbers == ()
