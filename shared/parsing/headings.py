"""Heading detection for PDFs, which have no headings, only fonts and wording.

Once the whole document is read, a short paragraph of one to three lines is a heading
when its font is clearly larger than the body text's, or bold where the body text is
not, and it does not read like a sentence, a table row or a running header/footer.
Levels rank the heading font sizes, largest first.

Some document families also word their structure: an SEC 10-Q or 10-K has "PART I",
"Item 2." and "Note 3 -" headings whatever their font. That wording is a
:class:`HeadingRules` set passed to :func:`mark_headings`; :data:`SEC_FILING_RULES` is
the one for filings, and another family can supply its own.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from shared.parsing.pdf_layout import (
    _DASH,
    _NUMBER,
    _running_key,
    _running_lines,
    _spread,
    _table_row,
)
from shared.parsing.pdf_model import _Line, _Page, _Paragraph, _tidy

# Font sizes are the loose char box heights (ascent to descent), as read by
# shared.parsing.pdf_reading.
# A heading is a paragraph of at most this many lines and characters.
_HEADING_MAX_LINES = 3
_HEADING_MAX_CHARS = 120
# A font at least this much larger than the body's is a heading font (bold: a bit less).
_LARGER = 1.15
_LARGER_BOLD = 1.08
# Bold text this close to the body size (or larger) is a heading at body size; smaller
# bold text is table column labels and captions.
_BODY_SIZE_TOLERANCE = 0.95
# Heading sizes closer than this ratio are one level (rounding, different fonts).
_SAME_LEVEL = 0.93
# Above this share of bold characters, bold says nothing about headings.
_BOLD_BODY_SHARE = 0.5
# Bold text at body size further right than this share of the page is column labels.
_COLUMN_LABEL_LEFT = 0.45
# Headings start with an upper-case letter, a digit or an opening mark; sentence
# punctuation at the end makes a sentence, not a heading.
_HEADING_START = re.compile(r"[A-Z0-9(\"'\u2018\u201c\u00a7\u2022]")
_SENTENCE_END = re.compile(r"[.,;!?]$")
# A year ends a heading ("Fiscal 2023"), unlike other numbers (see _NUMBER).
_YEAR = re.compile(r"^(19|20)\d\d$")
# "Apple Inc.", "Washington, D.C.": a final period that ends an abbreviation.
_ABBREVIATION_END = re.compile(r"^(?:[A-Z][a-z]{0,3}|(?:[A-Z]\.)+[A-Z])\.$")
# A heading line ending like this continues on the next line.
_RUNS_ON = re.compile(
    r"(?:\b(?:and|or|of|the|to|in|for|on|with|by|a|an)|[,&\u2013\u2014-])\s*$", re.I
)

# A pattern a heading's text matches, and the level it then has.
_Wording = tuple[re.Pattern[str], int]


@dataclass(frozen=True)
class HeadingRules:
    """The wording that marks a document family's structural headings.

    Font alone finds headings in any document; a family that numbers its structure in
    words ("PART I", "Item 2.") also gets those as headings at fixed levels, whatever
    their font. The levels of the section wordings (1 to :attr:`depth`) are kept in a
    document of the family, one with a heading at the deepest section level; the
    headings found by font then rank below them.

    Attributes:
        name: What the rules are for ("sec-filing"), for reading logs and tests.
        sections: ``(pattern, level)`` pairs, first match wins: a paragraph of at most
            two lines whose text matches is a heading at ``level`` even in body font,
            unless it reads like a table row or a running header.
        numbered: ``(pattern, level)`` pairs that fix the level of a heading found by
            its font ("Note 3 -"), in a document of the family only.
        max_chars: The longest heading text considered at all: section headings may be
            this long, headings found by font only at most 120 characters.
    """

    name: str
    sections: tuple[_Wording, ...]
    numbered: tuple[_Wording, ...]
    max_chars: int

    @property
    def depth(self) -> int:
        """The deepest section level (0 without sections)."""
        return max((level for _, level in self.sections), default=0)

    def section_level(self, text: str) -> int | None:
        """The level that ``text``'s wording gives it as a section heading, if any."""
        return _first_level(self.sections, text)

    def numbered_level(self, text: str) -> int | None:
        """The level that ``text``'s wording gives a heading found by font, if any."""
        return _first_level(self.numbered, text)

    def is_numbered(self, text: str) -> bool:
        """Whether ``text`` is worded like one of the family's structural headings."""
        return self.section_level(text) is not None or self.numbered_level(text) is not None


def _first_level(wordings: tuple[_Wording, ...], text: str) -> int | None:
    return next((level for pattern, level in wordings if pattern.match(text)), None)


# SEC 10-Q and 10-K filings: PART and Item are levels 1 and 2, notes to the financial
# statements 3; Item headings can be long ("Item 2. Management's Discussion and
# Analysis of Financial Condition and Results of Operations").
SEC_FILING_RULES = HeadingRules(
    name="sec-filing",
    sections=(
        # "PART II" alone or titled, not the running header "PART II Item 1A" or
        # "Part I, Item 2".
        (re.compile(r"^PART\s+[IVX]+\b(?!\s*,|\s+Item\b)", re.IGNORECASE), 1),
        (re.compile(r"^Item\s+\d+[A-Z]?\.", re.IGNORECASE), 2),
    ),
    numbered=((re.compile(r"^Note\s+\d+\s*[-:.\u2013\u2014]", re.IGNORECASE), 3),),
    max_chars=160,
)


@dataclass
class _Candidate:
    paragraph: _Paragraph
    level: int | None = None  # fixed by wording (HeadingRules): PART 1, Item 2, Note 3
    size: float | None = None  # a larger-than-body font; None for bold at body size


def mark_headings(pages: list[_Page], rules: HeadingRules) -> None:
    """Split headings off their paragraphs and set their ``level``, in place.

    Needs the whole document: the body font, running headers and the heading sizes in
    use are the document's, not a page's (see the module docstring).

    Args:
        pages: The document's pages, their paragraphs as layout grouped them; heading
            lines at the start of a paragraph become paragraphs of their own.
        rules: The document family's heading wording, e.g. :data:`SEC_FILING_RULES`.
    """
    finder = _HeadingFinder.for_document(pages, rules)
    if finder is None:
        return
    candidates: list[_Candidate] = []
    for page in pages:
        paragraphs = [
            part for paragraph in page.paragraphs for part in finder.split(paragraph, page.width)
        ]
        page.paragraphs = paragraphs
        for index, paragraph in enumerate(paragraphs):
            candidate = finder.candidate(paragraph, page.width)
            if candidate is None:
                continue
            # Bold body-size text between table rows labels the rows ("Operations",
            # "Liabilities and stockholders' equity" in a financial statement).
            if (
                candidate.size is None
                and candidate.level is None
                and 0 < index < len(paragraphs) - 1
                and _table_row(paragraphs[index - 1].lines[-1].text)
                and _table_row(paragraphs[index + 1].lines[0].text)
            ):
                continue
            candidates.append(candidate)
    _assign_levels(candidates, rules)


def _assign_levels(candidates: list[_Candidate], rules: HeadingRules) -> None:
    """Rank the heading sizes, largest first; bold at body size is the deepest level."""
    rank: dict[float, int] = {}
    level, top = 0, 0.0  # top: the largest size of the current level
    for size in sorted({c.size for c in candidates if c.size is not None}, reverse=True):
        if not level or size < top * _SAME_LEVEL:
            level, top = level + 1, size
        rank[size] = level
    # In a filing PART and Item are levels 1 and 2 (and Note 3); the others go below.
    # A document is of the family when it has a heading at the deepest section level
    # (an Item: a lone "Part I" is no filing); elsewhere only section levels stand.
    filing = any(c.level == rules.depth for c in candidates)
    offset = rules.depth if filing else 0
    for c in candidates:
        if c.level is not None and (filing or c.level <= rules.depth):
            c.paragraph.level = c.level
        else:
            found = rank[c.size] if c.size is not None else level + 1
            c.paragraph.level = min(found + offset, 6)


class _HeadingFinder:
    """Decides which paragraphs are headings, knowing the document's body font."""

    def __init__(
        self,
        body_size: float,
        body_bold: bool,
        running: set[tuple[str, int]],
        rules: HeadingRules,
    ) -> None:
        self.body_size = body_size
        self.body_bold = body_bold
        self.running = running
        self.rules = rules

    @classmethod
    def for_document(cls, pages: list[_Page], rules: HeadingRules) -> _HeadingFinder | None:
        sizes: Counter[float] = Counter()
        bold = total = 0
        for page in pages:
            for paragraph in page.paragraphs:
                for line in paragraph.lines:
                    if line.size is not None and line.size > 0:
                        sizes[round(line.size, 1)] += len(line.text)
                        total += len(line.text)
                        bold += len(line.text) if line.bold else 0
        if not total:
            return None
        # The body font is the median over characters (not lines: tables have many).
        seen, body_size = 0, 0.0
        for body_size in sorted(sizes):
            seen += sizes[body_size]
            if seen * 2 >= total:
                break
        return cls(body_size, bold > total * _BOLD_BODY_SHARE, _running_lines(pages), rules)

    def heading_style(self, line: _Line) -> bool:
        """Whether the line's font is a heading font: larger, or bold at body size."""
        if line.size is None:
            return False
        if line.size >= self.body_size * _LARGER:
            return True
        bold = line.bold and not self.body_bold
        return bold and line.size >= self.body_size * _BODY_SIZE_TOLERANCE

    def split(self, paragraph: _Paragraph, page_width: float) -> list[_Paragraph]:
        """Split leading heading lines off a paragraph, when they make headings.

        Headings set with normal line spacing ("Item 1A. Risk Factors" right above its
        text, "PART II" right above "Item 1.") arrive in one paragraph with what follows.
        """
        lines = paragraph.lines
        if len(lines) < 2 or not self.heading_style(lines[0]):
            return [paragraph]
        count = 1
        while count < len(lines) and self.heading_style(lines[count]):
            count += 1
        if count > _HEADING_MAX_LINES:
            return [paragraph]  # a bold passage, not a heading
        groups = _heading_groups(lines[:count], self.rules)
        heads = len(groups)
        if count < len(lines):
            groups.append(lines[count:])
        if len(groups) == 1:
            return [paragraph]
        parts = [_Paragraph(_tidy(group), group) for group in groups]
        if all(self.candidate(part, page_width) for part in parts[:heads]):
            return parts
        return [paragraph]

    def candidate(self, paragraph: _Paragraph, page_width: float) -> _Candidate | None:
        """The paragraph as a heading, or ``None`` when it is not one."""
        lines = paragraph.lines
        text = " ".join(paragraph.text.split())
        if len(lines) > _HEADING_MAX_LINES or len(text) > self.rules.max_chars:
            return None
        if not _HEADING_START.match(text) or sum(ch.isalpha() for ch in text) < 2:
            return None
        if text.startswith("(") and text.endswith(")"):
            return None  # "(In millions)", "(Unaudited)"
        tokens = text.split()
        last = tokens[-1]
        # A table row has numbers; a table-of-contents line ends in a page number.
        numbers = sum(1 for token in tokens if _NUMBER.match(token))
        if numbers >= 2 or ((_NUMBER.match(last) or _DASH.match(last)) and not _YEAR.match(last)):
            return None
        if any(key in self.running for key in map(_running_key, lines)) or any(map(_spread, lines)):
            return None
        section = self.rules.section_level(text) if len(lines) <= 2 else None
        if section is not None:
            return _Candidate(paragraph, level=section)
        if len(text) > _HEADING_MAX_CHARS:
            return None
        if _SENTENCE_END.search(text) and not _ABBREVIATION_END.search(last):
            return None
        if not all(map(self.heading_style, lines)):
            return None
        size = min(line.size or 0.0 for line in lines)
        note = self.rules.numbered_level(text)
        bold = not self.body_bold and all(line.bold for line in lines)
        if size >= self.body_size * (_LARGER_BOLD if bold else _LARGER):
            return _Candidate(paragraph, level=note, size=size)
        # Body-size bold text in the right part of the page is a table's column labels.
        left = lines[0].left
        if page_width > 0 and left is not None and left > page_width * _COLUMN_LABEL_LEFT:
            return None
        return _Candidate(paragraph, level=note)


def _heading_groups(lines: list[_Line], rules: HeadingRules) -> list[list[_Line]]:
    """Split consecutive heading lines into headings.

    A heading starts at each PART, Item or Note line (any wording of ``rules``), after
    one (unless its text runs on), and where the font size changes.
    """
    groups: list[list[_Line]] = []
    for line in lines:
        text = line.text.strip()
        if groups:
            group, previous = groups[-1], groups[-1][-1]
            runs_on = _RUNS_ON.search(previous.text) or text[:1].islower()
            same_size = _same_size(previous.size, line.size)
            after_numbered = rules.is_numbered(group[0].text.strip()) and not runs_on
            if same_size and not after_numbered and not rules.is_numbered(text):
                group.append(line)
                continue
        groups.append([line])
    return groups


def _same_size(a: float | None, b: float | None) -> bool:
    if not a or not b:
        return a == b
    return min(a, b) >= max(a, b) * _SAME_LEVEL
