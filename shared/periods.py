"""Reporting periods: what span of time a document reports on, read from its own text.

A quarterly or annual report states its period on its cover ("For the quarterly period
ended July 1, 2023") and its fiscal year elsewhere ("the fiscal year ended September 24,
2022"). From those two facts follow the names people give the period: the calendar
quarter it falls in, and the fiscal quarter and fiscal year the company calls it (a
company whose fiscal year ends in September calls the quarter ended December 31, 2022
its first quarter of fiscal 2023). Pure string and date work, no dependencies, so both
the parse step and retrieval use it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
MONTH_PATTERN = "|".join(sorted(MONTHS, key=len, reverse=True))
# "June 25, 2022", "Sept. 30 2023".
DATE = re.compile(rf"\b({MONTH_PATTERN})\.?\s+(\d{{1,2}}),?\s+((?:19|20)\d{{2}})\b", re.IGNORECASE)
# How much of a document's opening text states its period: a cover page.
COVER_CHARS = 5000
# The period a cover states, by the words before its end date; the first match wins,
# so a quarterly report's cover is read before any mention of the last annual report.
_COVER_PERIODS = (
    (re.compile(r"\bquarterly period ended\s*:?\s*", re.IGNORECASE), 3),
    (re.compile(r"\b(?:three months|quarter) ended\s*:?\s*", re.IGNORECASE), 3),
    (re.compile(r"\bsix months ended\s*:?\s*", re.IGNORECASE), 6),
    (re.compile(r"\bnine months ended\s*:?\s*", re.IGNORECASE), 9),
    (re.compile(r"\b(?:fiscal )?year ended\s*:?\s*", re.IGNORECASE), 12),
)
_YEAR_ENDED = re.compile(rf"\byear (?:ended|ending)\s*:?\s*(?:{DATE.pattern})", re.IGNORECASE)
# Period ends a few days into a month (52/53-week fiscal years end on a weekday, e.g.
# "October 1, 2022") belong to the month before.
_SPILL_DAYS = 7


def parse_date(month: str, day: str, year: str) -> dt.date | None:
    """A date from a month name, day and year (None if impossible, e.g. February 30)."""
    try:
        return dt.date(int(year), MONTHS[month.lower().rstrip(".")], int(day))
    except (KeyError, ValueError):
        return None


def closing_month(day: dt.date) -> tuple[int, int]:
    """The ``(year, month)`` a period ending on ``day`` closes (a few days in: the month before)."""
    if day.day > _SPILL_DAYS:
        return day.year, day.month
    return (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)


@dataclass(frozen=True)
class ReportingPeriod:
    """The span a document reports on.

    Attributes:
        end: The last day of the period.
        months: Its length in months (3 for a quarter, 12 for a year).
        fiscal_year_end_month: The month the company's fiscal year ends (12 when the
            document does not say).
    """

    end: dt.date
    months: int
    fiscal_year_end_month: int = 12

    @property
    def start(self) -> dt.date:
        """The first day of the period (approximately, for 52/53-week years)."""
        year, month = closing_month(self.end)
        first = year * 12 + (month - 1) - (self.months - 1)  # months since year 0
        return dt.date(first // 12, first % 12 + 1, 1)

    def calendar_quarter(self) -> tuple[int, int]:
        """``(quarter, year)`` of the calendar quarter the period closes."""
        year, month = closing_month(self.end)
        return (month - 1) // 3 + 1, year

    def fiscal_quarter(self) -> tuple[int, int]:
        """``(quarter, fiscal year)`` the company calls the quarter the period closes.

        The fiscal year is named by the calendar year it ends in.
        """
        year, month = closing_month(self.end)
        into = (month - self.fiscal_year_end_month) % 12  # months since the fiscal year began
        quarter = (into - 1) // 3 + 1 if into else 4
        return quarter, year + (1 if month > self.fiscal_year_end_month else 0)

    def fiscal_year(self) -> int:
        """The fiscal year the period belongs to (named by the calendar year it ends in)."""
        return self.fiscal_quarter()[1]


def reporting_period(text: str) -> ReportingPeriod | None:
    """The period a document's cover states, with its fiscal year's end, if it states one.

    Args:
        text: The document's text (its opening is read for the period, all of it for
            the fiscal year's end).

    Returns:
        The period, or None when the opening names no period ended on a date.
    """
    cover = text[:COVER_CHARS]
    for words, months in _COVER_PERIODS:
        for match in words.finditer(cover):
            found = DATE.match(cover, match.end())
            day = found and parse_date(*found.groups())
            if day:
                return ReportingPeriod(day, months, fiscal_year_end_month(text))
    return None


def fiscal_year_end_month(text: str) -> int:
    """The month the fiscal years a document mentions end in, most often (else December)."""
    months: Counter[int] = Counter()
    for match in _YEAR_ENDED.finditer(text):
        day = parse_date(*match.groups())
        if day:
            months[closing_month(day)[1]] += 1
    return months.most_common(1)[0][0] if months else 12
