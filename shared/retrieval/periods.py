"""Reading the periods a question names, and matching them against documents' periods.

"the quarter ended July 1, 2023", "Q3 2022", "first quarter of fiscal 2023", "the first
half of fiscal 2023", "fiscal year 2024", "October 2022", "the latest 10-Q", "the 10-Q
before the latest one", "between Q1 2023 and Q3 2023". Each becomes a
:class:`PeriodAsk` that a document's :class:`~shared.periods.ReportingPeriod` (read from
its cover) or its declared date satisfies or not. Pure string and date work.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from shared.periods import DATE, MONTH_PATTERN, MONTHS, ReportingPeriod, closing_month, parse_date

_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4}
_ORDINALS["4th"] = 4
_NTH = "first|second|third|fourth|1st|2nd|3rd|4th"
_YEAR = r"(?:FY\s*)?'?((?:19|20)\d{2}|\d{2})\b"
# "Q3 2022", "Q3 FY23", "fiscal Q3 2022", "third quarter of fiscal year 2024".
_QUARTER = re.compile(
    rf"\b(?:(fiscal|calendar)\s+)?(?:Q([1-4])|({_NTH})\s+(?:fiscal\s+)?quarter)(?:\s+of)?"
    rf"\s*(?:(fiscal|calendar)\s+)?(?:year\s+)?(FY)?\s*{_YEAR}",
    re.IGNORECASE,
)
# "2023 Q2" (a file name's label), "FY2024 Q1".
_YEAR_QUARTER = re.compile(r"\b(FY\s*)?((?:19|20)\d{2})\s*Q([1-4])\b", re.IGNORECASE)
_HALF = re.compile(
    rf"\b(?:(first|second|1st|2nd)\s+half|H([12]))(?:\s+of)?\s*(fiscal\s+)?(?:year\s+)?{_YEAR}",
    re.IGNORECASE,
)
_FISCAL_YEAR = re.compile(rf"\b(?:fiscal\s+(?:year\s+)?|FY\s*){_YEAR}", re.IGNORECASE)
_MONTH_YEAR = re.compile(rf"\b({MONTH_PATTERN})\.?\s+((?:19|20)\d{{2}})\b", re.IGNORECASE)
_BETWEEN = re.compile(r"\b(?:between|from)\b.+\b(?:and|to|through)\b", re.IGNORECASE)

_LATEST = re.compile(
    r"\b(latest|most recent|newest|last (?:quarter|report|filing|10-?[qk])|current (?:quarter"
    r"|report|filing))\b",
    re.IGNORECASE,
)
_EARLIEST = re.compile(
    r"\b(earliest|oldest|first (?:report|filing|10-?[qk]) (?:in|of|available|here))\b",
    re.IGNORECASE,
)
_PREVIOUS = re.compile(
    r"\b(?:before (?:the|its|their) (?:latest|most recent|last)|(?:previous|prior|preceding)"
    r" (?:quarter|report|filing|10-?[qk]))\b",
    re.IGNORECASE,
)


class Order(Enum):
    """A position among a subject's documents by period: newest, oldest, one before newest."""

    LATEST = "latest"
    EARLIEST = "earliest"
    PREVIOUS = "previous"


@dataclass(frozen=True)
class PeriodAsk:
    """One period a question names.

    Attributes:
        text: The words that named it.
        day: A period's last day ("the quarter ended July 1, 2023").
        quarter: A quarter (1-4), with ``year``.
        half: A half year (1-2), with ``year``.
        month: A month (1-12), with ``year`` (the period closes or the document is
            dated in it).
        year: The year; alone, a fiscal or calendar year.
        fiscal: True if said to be fiscal, False if calendar, None if either.
    """

    text: str
    day: dt.date | None = None
    quarter: int | None = None
    half: int | None = None
    month: int | None = None
    year: int | None = None
    fiscal: bool | None = None

    def matches(self, period: ReportingPeriod | None, dated: dt.date | None = None) -> bool:
        """True if a document with ``period`` (and declared date ``dated``) is what is asked.

        Args:
            period: The reporting period the document states, if any.
            dated: The date the document declares (its file's date), if any.
        """
        if self.month is not None and self.year is not None:
            wanted = (self.year, self.month)
            closes = period is not None and closing_month(period.end) == wanted
            return closes or (dated is not None and (dated.year, dated.month) == wanted)
        if period is None:
            return False
        if self.day is not None:
            return period.end == self.day
        if self.year is None:
            return False
        fiscal = period.fiscal_quarter()
        calendar = period.calendar_quarter()
        if self.quarter is not None or self.half is not None:
            quarter = self.quarter if self.quarter is not None else 2 * (self.half or 1)
            named: list[tuple[int, int]] = []
            if self.fiscal is not False:
                named.append(fiscal)
            if self.fiscal is not True:
                named.append(calendar)
            return (quarter, self.year) in named
        years: list[int] = []
        if self.fiscal is not False:
            years.append(fiscal[1])
        if self.fiscal is not True:
            years.append(period.end.year)
        return self.year in years


def _year(text: str) -> int:
    value = int(text)
    return value + 2000 if value < 100 else value


def _fiscal(*words: str | None) -> bool | None:
    for word in words:
        if word:
            return word.strip().lower() != "calendar"
    return None


def _date_ask(match: re.Match[str]) -> PeriodAsk | None:
    day = parse_date(*match.groups())
    return None if day is None else PeriodAsk(match.group(0), day=day)


def _half_ask(match: re.Match[str]) -> PeriodAsk:
    word, number, fiscal, year = match.groups()
    half = _ORDINALS[word.lower()] if word else int(number)
    return PeriodAsk(match.group(0), half=half, year=_year(year), fiscal=_fiscal(fiscal))


def _quarter_ask(match: re.Match[str]) -> PeriodAsk:
    before, number, word, after, fy, year = match.groups()
    quarter = int(number) if number else _ORDINALS[word.lower()]
    fiscal = _fiscal(before, after, fy)
    if fiscal is None and "fiscal" in match.group(0).lower():
        fiscal = True
    return PeriodAsk(match.group(0), quarter=quarter, year=_year(year), fiscal=fiscal)


def _year_quarter_ask(match: re.Match[str]) -> PeriodAsk:
    fy, year, number = match.groups()
    return PeriodAsk(match.group(0), quarter=int(number), year=int(year), fiscal=_fiscal(fy))


def _month_ask(match: re.Match[str]) -> PeriodAsk:
    month = MONTHS[match.group(1).lower()]
    return PeriodAsk(match.group(0), month=month, year=int(match.group(2)))


def _fiscal_year_ask(match: re.Match[str]) -> PeriodAsk:
    return PeriodAsk(match.group(0), year=_year(match.group(1)), fiscal=True)


# Most specific first: words one reading has taken are not read again ("the quarter
# ended March 31, 2023" is a day, not the month March 2023).
_READINGS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], PeriodAsk | None]], ...] = (
    (DATE, _date_ask),
    (_HALF, _half_ask),
    (_QUARTER, _quarter_ask),
    (_YEAR_QUARTER, _year_quarter_ask),
    (_MONTH_YEAR, _month_ask),
    (_FISCAL_YEAR, _fiscal_year_ask),
)


def period_asks(question: str) -> list[PeriodAsk]:
    """The periods ``question`` names, in the order it names them.

    Args:
        question: The question.
    """
    asks: list[tuple[int, PeriodAsk]] = []
    taken: list[tuple[int, int]] = []
    for pattern, read in _READINGS:
        for match in pattern.finditer(question):
            if any(match.start() < end and match.end() > start for start, end in taken):
                continue
            ask = read(match)
            if ask is not None:
                taken.append(match.span())
                asks.append((match.start(), ask))
    return [ask for _, ask in sorted(asks, key=lambda item: item[0])]


def asks_range(question: str) -> bool:
    """True if the question asks about a span between two periods ("between X and Y")."""
    return _BETWEEN.search(question) is not None


def order_asked(question: str) -> Order | None:
    """The position among a subject's documents the question asks for, if any.

    "the 10-Q before the latest one" asks for the one before the newest, although it
    also says "latest".
    """
    if _PREVIOUS.search(question):
        return Order.PREVIOUS
    if _LATEST.search(question):
        return Order.LATEST
    if _EARLIEST.search(question):
        return Order.EARLIEST
    return None
