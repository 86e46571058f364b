"""The in-memory shape of a PDF as read: lines with their boxes, paragraphs, pages.

Every stage of the PDF parse works on these types: :mod:`shared.parsing.pdf_reading`
makes the lines, :mod:`shared.parsing.pdf_layout` groups them into paragraphs,
:mod:`shared.parsing.headings` marks headings, and :mod:`shared.parsing.pdf` adds the
blocks. They live apart from all of those so that none has to import another for them.

A line's boxes follow it through paragraph and heading assembly and get offsets into the
final text once the blocks are placed (:func:`_place_boxes`). Both need the text as it
reads in its paragraph (:func:`_tidy_text`), so that lives here as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.models import TextBox
from shared.parsing.builder import clean_text

# A box (left, top, right, bottom) in points from the displayed page's top-left corner.
_Box = tuple[float, float, float, float]


@dataclass
class _Line:
    text: str
    bottom: float | None = None  # baseline-ish y in PDF points (y grows upwards)
    height: float | None = None
    left: float | None = None
    right: float | None = None
    size: float | None = None  # the font size of the first letter or digit
    bold: bool = False  # the first and last letters or digits are in a bold font
    # Where the text sits: ``(start, end, box)`` says ``text[start:end]`` is inside
    # ``box``. Usually one run; empty when the page's text cannot be positioned.
    runs: list[tuple[int, int, _Box]] = field(default_factory=list)
    # The text as it reads in its paragraph (see _tidy_text); kept in step with ``text``.
    tidy: str = field(init=False)

    def __post_init__(self) -> None:
        self.tidy = _tidy_text(self.text)

    def join_hyphenated(self, line: _Line) -> None:
        """Append ``line`` to this line, which ends in a soft hyphen, keeping the runs."""
        head = self.text.rstrip()[:-1]
        tail = line.text.strip()
        lead = len(line.text) - len(line.text.lstrip())

        def shift(offset: int) -> int:
            return len(head) + min(max(offset - lead, 0), len(tail))

        runs = [(min(a, len(head)), min(b, len(head)), box) for a, b, box in self.runs]
        runs += [(shift(a), shift(b), box) for a, b, box in line.runs]
        self.text, self.runs = head + tail, [run for run in runs if run[0] < run[1]]
        self.tidy = _tidy_text(self.text)
        self.bold = self.bold and line.bold


@dataclass
class _Paragraph:
    text: str
    lines: list[_Line]
    level: int | None = None  # set for headings


@dataclass
class _Page:
    width: float = 0.0
    height: float = 0.0
    paragraphs: list[_Paragraph] = field(default_factory=list)


def _tidy(lines: list[_Line]) -> str:
    """The lines' text, one tidy line each, without the lines that tidy to nothing."""
    return "\n".join(line.tidy for line in lines if line.tidy)


def _tidy_text(text: str) -> str:
    # Line by line is the same as on the joined text: cleaning is per character, and a
    # line holds no "\r" that could pair with the joining "\n".
    text = clean_text(text).replace("\u00ad", "")
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


def _place_boxes(lines: list[_Line], text: str, offset: int, page: int) -> list[TextBox]:
    """The boxes of a paragraph's lines, with offsets into the document's text.

    ``text`` is the paragraph's text as stored at ``offset``: its lines' tidied texts,
    in order, joined by a newline (a space in headings). Each line is matched where the
    previous one ended; on any mismatch the paragraph's remaining lines get no boxes:
    no box is better than a box on the wrong words.
    """
    boxes: list[TextBox] = []
    cursor = 0
    for line in lines:
        tidy = line.tidy
        if not tidy:
            continue  # _tidy dropped it too
        at = cursor + 1 if cursor else 0  # skip the separator
        if not text.startswith(tidy, at):
            break
        cursor = at + len(tidy)
        base = offset + at
        for start, end, (x0, y0, x1, y1) in line.runs:
            # Run offsets are in the raw line; tidying only drops characters and
            # collapses spaces, so a raw prefix tidies to a prefix of ``tidy``.
            first = len(_tidy_text(line.text[:start])) if start else 0
            if first and tidy[first : first + 1].isspace():
                first += 1
            stop = len(tidy) if end >= len(line.text) else len(_tidy_text(line.text[:end]))
            if first < stop:
                boxes.append(TextBox(page, base + first, base + stop, x0, y0, x1, y1))
    return boxes
