"""Layout inference on a PDF's lines: paragraphs, running headers/footers, table rows.

PDFs have no paragraphs, only positioned lines. Paragraph breaks are inferred from the
vertical gap between consecutive lines relative to the page's usual line spacing (and a
jump upwards starts a new column or frame); the line structure inside a paragraph is
kept because it is what keeps tables readable.

The other layout signals here say what kind of line a line is, from where it sits and
how it is spaced, for heading detection to rule lines out: repeated at the same height
on many pages (a running header or footer), ending in a table cell, or spread across
the page like column labels.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import defaultdict

from shared.parsing.pdf_model import _Line, _Page, _Paragraph, _tidy

# A gap this many times the page's usual line spacing separates paragraphs.
_PARAGRAPH_GAP = 1.3
# Without enough lines to know the usual spacing, compare with the font size instead:
# body lines sit ~1.2 font sizes apart, paragraphs ~1.7 or more.
_MIN_LEADS = 5
_GAP_IN_FONT_SIZES = 1.6
# Whatever the usual spacing, a gap this many font sizes wide is a paragraph break.
_MAX_GAP_IN_FONT_SIZES = 2.3
# Text jumping up by more than this many line spacings starts a new column or frame.
_COLUMN_JUMP = 4.0
# Paragraphs this short are fragments and join the previous paragraph.
_FRAGMENT_CHARS = 4
# Soft hyphens at a line end (pdfium reports them as U+0002 or U+00AD) join the word.
_SOFT_HYPHEN_END = re.compile("[\x02\u00ad]$")
# A line repeated at the same height on this many pages (at least 3) is a running header
# or footer ("Apple Inc. | Q1 2023 Form 10-Q | 12", "PART II Item 1A"), never a heading.
_RUNNING_MIN_PAGES = 3
_RUNNING_SHARE = 0.05
_RUNNING_Y = 4.0  # points per height bucket
_DIGITS = re.compile(r"\d+")
# A line wider than this many font sizes per character is spread out like column labels
# ("Compute & Networking   Graphics   All Other"): body text takes about half of that.
_SPREAD = 0.8
# Running headers and footers are short: a line longer than the longest heading
# (a filing's "Item 2. Management's Discussion and Analysis ...") is never one.
_RUNNING_MAX_CHARS = 160
# Numbers as in table cells ("117,154", "$(393)", "12.5%") and ids ("94-2404110"); a
# dash is an empty cell.
_NUMBER = re.compile(r"^[$(\u2014\u2013-]*\d[\d,./-]*%?\)?$")
_DASH = re.compile(r"^[$\u2014\u2013%-]$")


def _paragraphs(lines: list[_Line]) -> list[_Paragraph]:
    """Group lines into paragraphs by blank lines and vertical gaps."""
    leads = [
        prev.bottom - cur.bottom
        for prev, cur in itertools.pairwise(lines)
        if prev.bottom is not None and cur.bottom is not None and prev.bottom > cur.bottom
    ]
    # The median downward lead is the page's normal line spacing.
    spacing = statistics.median(leads) if len(leads) >= _MIN_LEADS else None
    groups: list[list[_Line]] = []
    current: list[_Line] = []
    previous: _Line | None = None
    for line in lines:
        if not line.text.strip():
            _close(groups, current)
            previous = None
            continue
        if previous is not None and _is_break(previous, line, spacing):
            _close(groups, current)
        if current and _SOFT_HYPHEN_END.search(current[-1].text.rstrip()):
            current[-1].join_hyphenated(line)
        else:
            current.append(line)
        previous = line
    _close(groups, current)
    merged: list[_Paragraph] = []
    for group in groups:
        text = _tidy(group)
        # Stray fragments ("(1)" footnote markers, a lone page number) that pdfium emits
        # apart from their line are not paragraphs of their own.
        if merged and len(text) <= _FRAGMENT_CHARS:
            merged[-1].text = f"{merged[-1].text}\n{text}"
            merged[-1].lines.extend(group)
        elif text:
            merged.append(_Paragraph(text, group))
    return merged


def _is_break(previous: _Line, line: _Line, spacing: float | None) -> bool:
    if previous.bottom is None or line.bottom is None:
        return False
    lead = previous.bottom - line.bottom
    size = max(previous.height or 0.0, line.height or 0.0)
    if size <= 0:
        return False
    if spacing is None:
        gap = size * _GAP_IN_FONT_SIZES
    else:
        gap = min(spacing * _PARAGRAPH_GAP, size * _MAX_GAP_IN_FONT_SIZES)
    # Either a larger-than-usual gap downwards, or a big jump upwards (next column).
    # Small upward moves are multi-line table headers and superscripts: keep together.
    return lead > gap or lead < -(spacing or size) * _COLUMN_JUMP


def _close(groups: list[list[_Line]], current: list[_Line]) -> None:
    if current:
        groups.append(list(current))
        current.clear()


def _table_row(text: str) -> bool:
    tokens = text.split()
    return bool(tokens) and bool(_NUMBER.match(tokens[-1]) or _DASH.match(tokens[-1]))


def _spread(line: _Line) -> bool:
    """Whether the line's words are spread across the page like table column labels."""
    if line.left is None or line.right is None or not line.size:
        return False
    return line.right - line.left > len(line.text.strip()) * line.size * _SPREAD


def _running_lines(pages: list[_Page]) -> set[tuple[str, int]]:
    """Line texts (digits masked) repeated at the same height on many pages.

    They are running headers and footers ("Apple Inc. | Q1 2023 Form 10-Q | 12",
    "PART II Item 1A").
    """
    threshold = max(_RUNNING_MIN_PAGES, _RUNNING_SHARE * len(pages))
    if len(pages) < threshold:
        return set()
    seen: defaultdict[tuple[str, int], set[int]] = defaultdict(set)
    for number, page in enumerate(pages):
        for paragraph in page.paragraphs:
            for line in paragraph.lines:
                key = _running_key(line)
                if key is not None:
                    seen[key].add(number)
    running: set[tuple[str, int]] = set()
    for text, bucket in seen:
        # Neighbouring buckets too: a line near a bucket edge may fall on either side.
        where = set().union(*(seen.get((text, b), set()) for b in (bucket - 1, bucket, bucket + 1)))
        if len(where) >= threshold:
            running.add((text, bucket))
    return running


def _running_key(line: _Line) -> tuple[str, int] | None:
    if line.bottom is None or len(line.text) > _RUNNING_MAX_CHARS:
        return None
    return _DIGITS.sub("#", " ".join(line.text.lower().split())), round(line.bottom / _RUNNING_Y)
