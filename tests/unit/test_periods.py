"""Reporting periods read from covers, and the periods questions name, matched."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.periods import ReportingPeriod, reporting_period
from shared.retrieval.periods import Order, order_asked, period_asks

APPLE_COVER = (
    "FORM 10-Q\nFor the quarterly period ended December 31, 2022\nApple Inc.\n"
    "... the Annual Report on Form 10-K for the fiscal year ended September 24, 2022 ..."
)


def test_a_cover_states_the_period_and_the_text_the_fiscal_year() -> None:
    period = reporting_period(APPLE_COVER)
    assert period == ReportingPeriod(dt.date(2022, 12, 31), 3, 9)
    assert period.fiscal_quarter() == (1, 2023)
    assert period.calendar_quarter() == (4, 2022)
    assert period.start == dt.date(2022, 10, 1)


def test_text_without_a_period_has_none() -> None:
    assert reporting_period("MRI findings in 40 patients ended the study early.") is None


@pytest.mark.parametrize(
    ("end", "fiscal_year_end", "fiscal"),
    [
        (dt.date(2022, 9, 30), 6, (1, 2023)),  # a June fiscal year
        (dt.date(2022, 10, 30), 1, (3, 2023)),  # a January fiscal year
        (dt.date(2023, 4, 30), 1, (1, 2024)),
        (dt.date(2022, 10, 1), 12, (3, 2022)),  # a 52/53-week year ending on a Saturday
        (dt.date(2023, 7, 1), 9, (3, 2023)),
    ],
)
def test_fiscal_quarters_follow_the_fiscal_year(
    end: dt.date, fiscal_year_end: int, fiscal: tuple[int, int]
) -> None:
    assert ReportingPeriod(end, 3, fiscal_year_end).fiscal_quarter() == fiscal


APPLE_Q1_FY23 = ReportingPeriod(dt.date(2022, 12, 31), 3, 9)


@pytest.mark.parametrize(
    ("question", "matches"),
    [
        ("iPhone sales in the first quarter of fiscal 2023?", True),
        ("iPhone sales in Q1 FY23?", True),
        ("iPhone sales in Q4 2022?", True),  # the calendar quarter it closes
        ("iPhone sales in calendar Q1 2023?", False),
        ("iPhone sales in the quarter ended December 31, 2022?", True),
        ("iPhone sales in the quarter ended April 1, 2023?", False),
        ("iPhone sales in December 2022?", True),
        ("iPhone sales in fiscal year 2023?", True),
        ("iPhone sales in fiscal 2022?", False),
    ],
)
def test_the_period_a_question_names_matches_a_documents_period(
    question: str, matches: bool
) -> None:
    asks = period_asks(question)
    assert len(asks) == 1, asks
    assert asks[0].matches(APPLE_Q1_FY23) is matches


def test_a_date_is_one_period_not_also_its_month() -> None:
    asks = period_asks("Net income for the quarter ended March 31, 2023 vs Q1 2022?")
    assert [(a.day, a.quarter, a.year) for a in asks] == [
        (dt.date(2023, 3, 31), None, None),
        (None, 1, 2022),
    ]


@pytest.mark.parametrize(
    ("question", "order"),
    [
        ("What did the latest 10-Q say?", Order.LATEST),
        ("In the most recent filing?", Order.LATEST),
        ("In the 10-Q before the latest one?", Order.PREVIOUS),
        ("In the quarter before its most recent one?", Order.PREVIOUS),
        ("In the earliest report?", Order.EARLIEST),
        ("What were net sales?", None),
    ],
)
def test_the_position_asked_for(question: str, order: Order | None) -> None:
    assert order_asked(question) is order
