"""Whether a cited passage supports the sentence citing it: word overlap and numbers.

A citation is *supported* when enough of its claim's content words occur in the passage
(``types.MIN_OVERLAP``; :class:`~shared.answering.types.Support` decides) and every
number of the claim occurs in the passage too. Numbers are compared as values, not as
text:

- ``1,234.5``, ``1234.5`` and ``$1,234.5`` are the same number; currency symbols,
  thousands separators and percent signs (``12%``, ``12 percent``) are dropped;
- ``(1,234)`` is a negative number, the way financial tables write it; signs are then
  ignored in the comparison, since prose says "a loss of 1,234" for a table's ``(1,234)``;
- scale words multiply (``$1.2 billion`` is 1,200,000,000, as is ``1,200 million``), and a
  number given with a scale word may also match a passage number in thousands,
  millions or billions (tables state their unit once, "in millions"), rounded to the
  precision the claim states (``$94.9 billion`` matches ``94,930`` in millions);
- digits inside words are not numbers (``10-Q``, ``Q3``, ``FY2024``, ``COVID-19``).

The check is lexical: it flags a claim whose numbers the passage does not contain,
which is what an unsupported figure usually looks like; it does not prove entailment.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from shared.answering.types import Support

_SCALES = {
    "thousand": Decimal(10) ** 3,
    "million": Decimal(10) ** 6,
    "mn": Decimal(10) ** 6,
    "billion": Decimal(10) ** 9,
    "bn": Decimal(10) ** 9,
    "trillion": Decimal(10) ** 12,
}
# The units a table may state once for all its numbers.
_TABLE_UNITS = (Decimal(10) ** 3, Decimal(10) ** 6, Decimal(10) ** 9)

_NUMBER = re.compile(
    r"(?<![\w.,\-])(?P<open>\()?(?P<minus>[-\u2212])?(?P<currency>[$\u20ac\u00a3\u00a5])?"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?![\w]|-[^\W\d]|,\d|\.\d)\)?"
    r"(?:\s?(?P<percent>%|percent\b|per cent\b)|\s(?P<scale>thousand|million|billion"
    r"|trillion|bn|mn)\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Number:
    """A number as written in text.

    Attributes:
        text: How it was written (``$1.2 billion``).
        value: Its value, scale applied, sign as written.
        written: Its value without the scale word (``1.2`` for ``$1.2 billion``).
        step: The precision it was written with (1 for ``12``, 0.1 billion for
            ``1.2 billion``).
        scaled: Whether a scale word followed it.
    """

    text: str
    value: Decimal
    written: Decimal
    step: Decimal
    scaled: bool


def numbers(text: str) -> list[Number]:
    """Return the numbers written in ``text``, normalised to values.

    Args:
        text: Any text (a claim or a passage).
    """
    found: list[Number] = []
    for match in _NUMBER.finditer(text):
        digits = match["digits"].replace(",", "")
        try:
            value = Decimal(digits)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            continue
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        scale = _SCALES.get((match["scale"] or "").lower(), Decimal(1))
        if bool(match["minus"]) or (bool(match["open"]) and match.group(0).rstrip().endswith(")")):
            value = -value
        found.append(
            Number(
                text=match.group(0).strip().strip("()") or match["digits"],
                value=value * scale,
                written=value,
                step=(Decimal(10) ** -decimals) * scale,
                scaled=match["scale"] is not None,
            )
        )
    return found


def _contains(passage: Iterable[Decimal], claimed: Number) -> bool:
    """Whether a passage value equals ``claimed`` at the precision it was written with."""
    wanted = abs(claimed.value)
    tolerance = claimed.step / 2
    units = (Decimal(1), *_TABLE_UNITS) if claimed.scaled else (Decimal(1),)
    return any(abs(abs(value) * unit - wanted) <= tolerance for value in passage for unit in units)


Terms = Callable[[str], Iterable[str]]


@functools.lru_cache(maxsize=1 << 14)
def _wordlike(term: str) -> bool:
    """Whether ``term`` holds no digit (words recur across passages: cached)."""
    return not any(char.isdigit() for char in term)


def _words(text: str, terms: Terms) -> set[str]:
    """The content words of ``text`` without numbers (those are compared as values)."""
    return set(filter(_wordlike, terms(text)))


def check_support(claims: Iterable[str], passage: str, terms: Terms) -> Support:
    """How well ``passage`` supports the sentences ``claims`` that cite it.

    Args:
        claims: The answer's sentences citing the passage, markers removed.
        passage: The cited passage's text.
        terms: The normalised content words of a text (``citations.terms``: the
            lexical helpers live with the snippets, which need them first).
    """
    passage_terms = _words(passage, terms)
    # A passage's "$94,930 million" also supports a claim that repeats "94,930".
    passage_values = [value for n in numbers(passage) for value in {n.value, n.written}]
    overlap = 1.0
    missing: dict[str, None] = {}
    for claim in claims:
        wanted = _words(claim, terms)
        if wanted:
            overlap = min(overlap, len(wanted & passage_terms) / len(wanted))
        for number in numbers(claim):
            if not _contains(passage_values, number):
                missing.setdefault(number.text)
    return Support(overlap=round(overlap, 3), missing_numbers=tuple(missing))
