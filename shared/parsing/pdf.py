"""PDF text extraction with pypdfium2, page by page.

PDFs have no paragraphs, only positioned lines. Paragraph breaks are inferred from the
vertical gap between consecutive lines relative to the page's usual line spacing; the
line structure inside a paragraph is kept because it is what keeps tables readable.

PDFs have no headings either. Once the whole document is read, a short paragraph of one
to three lines is a heading when its font is clearly larger than the body text's, or
bold where the body text is not, and it does not read like a sentence, a table row or a
running header/footer. SEC filing structure ("PART I", "Item 2.") is recognised by its
wording. Levels rank the heading font sizes, largest first.

Each line's box is captured as it is read, for citation viewers to highlight passages:
the union of its first and last characters' loose boxes (font ascent to descent),
which covers a straight line of text in any direction at two PDFium calls per line
(already made for the line's position); a box per character would add about two thirds
to the parse time of a 10-Q. The boxes follow their lines through paragraph and
heading assembly and get offsets into the final text once the blocks are placed
(:func:`_place_boxes`).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import itertools
import re
import statistics
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from shared.config import ParseLimits
from shared.errors import (
    CorruptContentError,
    EmptyContentError,
    EncryptedContentError,
    LimitExceededError,
)
from shared.models import TextBox
from shared.parsing.builder import BLOCK_SEPARATOR, DocumentBuilder, clean_text

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
# pdfium joins a word hyphenated across two lines into one line of text, marking the
# hyphen with U+FFFE ("mem\ufffebership"): the line gets a box per visual line.
_HYPHEN_JOIN = "\ufffe"
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
     "\ufb05": "st", "\ufb06": "st"}
)  # fmt: skip

# --- Heading detection -------------------------------------------------------------
# Font sizes are the loose char box heights (ascent to descent): pdfium's own
# FPDFText_GetFontSize ignores some text matrices (it reports 800 for 8pt text in
# real filings), the box does not.
# A heading is a paragraph of at most this many lines and characters.
_HEADING_MAX_LINES = 3
_HEADING_MAX_CHARS = 120
_SEC_HEADING_MAX_CHARS = 160
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
# A line repeated at the same height on this many pages (at least 3) is a running header
# or footer ("Apple Inc. | Q1 2023 Form 10-Q | 12", "PART II Item 1A"), never a heading.
_RUNNING_MIN_PAGES = 3
_RUNNING_SHARE = 0.05
_RUNNING_Y = 4.0  # points per height bucket
_DIGITS = re.compile(r"\d+")
# A line wider than this many font sizes per character is spread out like column labels
# ("Compute & Networking   Graphics   All Other"): body text takes about half of that.
_SPREAD = 0.8
# Bold text at body size further right than this share of the page is column labels.
_COLUMN_LABEL_LEFT = 0.45
# Headings start with an upper-case letter, a digit or an opening mark; sentence
# punctuation at the end makes a sentence, not a heading.
_HEADING_START = re.compile(r"[A-Z0-9(\"'\u2018\u201c\u00a7\u2022]")
_SENTENCE_END = re.compile(r"[.,;!?]$")
# Numbers as in table cells ("117,154", "$(393)", "12.5%") and ids ("94-2404110"); a
# dash is an empty cell.
_NUMBER = re.compile(r"^[$(\u2014\u2013-]*\d[\d,./-]*%?\)?$")
_DASH = re.compile(r"^[$\u2014\u2013%-]$")
_YEAR = re.compile(r"^(19|20)\d\d$")
# "PART II" alone or titled, not the running header "PART II Item 1A" or "Part I, Item 2".
_SEC_PART = re.compile(r"^PART\s+[IVX]+\b(?!\s*,|\s+Item\b)", re.IGNORECASE)
_SEC_ITEM = re.compile(r"^Item\s+\d+[A-Z]?\.", re.IGNORECASE)
_SEC_NOTE = re.compile(r"^Note\s+\d+\s*[-:.\u2013\u2014]", re.IGNORECASE)
# "Apple Inc.", "Washington, D.C.": a final period that ends an abbreviation.
_ABBREVIATION_END = re.compile(r"^(?:[A-Z][a-z]{0,3}|(?:[A-Z]\.)+[A-Z])\.$")
# A heading line ending like this continues on the next line.
_RUNS_ON = re.compile(
    r"(?:\b(?:and|or|of|the|to|in|for|on|with|by|a|an)|[,&\u2013\u2014-])\s*$", re.I
)
_BOLD_FONT = re.compile(rb"bold|black|heavy|semibold|demi", re.IGNORECASE)
_FORCE_BOLD_FLAG = 1 << 18
_WORD_CHAR = re.compile(r"\w")


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


@dataclass(frozen=True)
class _Frame:
    """Maps PDF user space to the page as displayed: crop box, /Rotate, top-left origin.

    That is the frame a viewer (pdf.js, PDFium itself) renders the page in, so a box
    scales to the rendered page by ``rendered width / width``, whatever the rotation.
    """

    left: float  # the crop box, in user space
    bottom: float
    right: float
    top: float
    rotation: int  # clockwise degrees: 0, 90, 180 or 270

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) as displayed."""
        width, height = self.right - self.left, self.top - self.bottom
        return (height, width) if self.rotation in (90, 270) else (width, height)

    def box(self, left: float, bottom: float, right: float, top: float) -> _Box | None:
        """The displayed box of a user-space rectangle, clipped to the page; None if
        nothing of it is on the page."""
        width, height = self.right - self.left, self.top - self.bottom
        # Unrotated, from the top-left corner: u to the right, v downwards.
        u0, u1 = left - self.left, right - self.left
        v0, v1 = self.top - top, self.top - bottom
        if self.rotation == 90:  # the page turns clockwise: its left edge is on top
            u0, v0, u1, v1 = height - v1, u0, height - v0, u1
            width, height = height, width
        elif self.rotation == 180:
            u0, v0, u1, v1 = width - u1, height - v1, width - u0, height - v0
        elif self.rotation == 270:
            u0, v0, u1, v1 = v0, width - u1, v1, width - u0
            width, height = height, width
        x0, x1 = max(u0, 0.0), min(u1, width)
        y0, y1 = max(v0, 0.0), min(v1, height)
        if x1 <= x0 or y1 <= y0:
            return None  # text outside the crop box: nothing to highlight
        # To 0.1pt, half up (all >= 0): round(x, 1) is exact but 3x slower, per line.
        return (
            int(x0 * 10 + 0.5) / 10,
            int(y0 * 10 + 0.5) / 10,
            int(x1 * 10 + 0.5) / 10,
            int(y1 * 10 + 0.5) / 10,
        )


# PDFium is not thread-safe, not even across different documents (pypdfium2's docs), and
# an instance may parse several PDFs at once on worker threads: every PDFium call of a
# parse happens under this lock. Pages and text pages are closed explicitly inside it,
# so no PDFium work is left for the garbage collector to run outside it.
_PDFIUM_LOCK = threading.Lock()


def parse_pdf(data: bytes, builder: DocumentBuilder, limits: ParseLimits) -> str | None:
    """Parse a PDF page by page into ``builder``; return its title, if any.

    Serialised process-wide because PDFium is not thread-safe (see ``_PDFIUM_LOCK``).
    """
    with _PDFIUM_LOCK:
        return _parse_pdf_unlocked(data, builder, limits)


def _parse_pdf_unlocked(data: bytes, builder: DocumentBuilder, limits: ParseLimits) -> str | None:
    """Extract heading and paragraph blocks page by page, keeping page numbers.

    Args:
        data: The PDF bytes.
        builder: Receives the blocks and page spans.
        limits: The parse limits (``max_pages``, ``max_text_chars``).

    Returns:
        The document's metadata title, if set.

    Raises:
        EncryptedContentError: For password-protected PDFs.
        CorruptContentError: For unreadable PDFs.
        LimitExceededError: For too many pages or too much text.
        EmptyContentError: When no page has extractable text (e.g. a scan).
    """
    pdf = _open(data)
    try:
        page_count = len(pdf)
        if page_count > limits.max_pages:
            raise LimitExceededError(
                f"PDF has {page_count:,} pages; at most {limits.max_pages:,} are allowed. "
                "Split it into smaller documents and upload them separately",
                code="too_many_pages",
            )
        unreadable: list[int] = []
        pages: list[_Page] = []
        chars = -len(BLOCK_SEPARATOR)
        for index in range(page_count):
            try:
                page = _read_page(pdf, index)
            except pdfium.PdfiumError:
                # One broken page should not sink a 300-page report; it is recorded.
                unreadable.append(index + 1)
                page = _Page()
            pages.append(page)
            # Headings need the whole document, so blocks are added at the end; stop
            # reading once the text is too long anyway. Paragraph texts are already
            # clean, so this is the builder's count and it raises below.
            chars += sum(len(p.text) + len(BLOCK_SEPARATOR) for p in page.paragraphs)
            if chars > limits.max_text_chars:
                break
        title = _metadata_title(pdf)
        created = _metadata_date(pdf)
        if created is not None:
            # When the file says it was made: answers about "the latest" use it.
            builder.metadata["created"] = created
    finally:
        pdf.close()
    _mark_headings(pages)
    for number, page in enumerate(pages, start=1):
        sized = page.width > 0 and page.height > 0
        builder.begin_page(
            number,
            width=round(page.width, 1) if sized else None,
            height=round(page.height, 1) if sized else None,
        )
        for paragraph in page.paragraphs:
            if paragraph.level is None:
                text = paragraph.text
                block = builder.add("paragraph", text)
            else:
                # The builder puts a heading on one line; so does this copy of its text.
                text = " ".join(paragraph.text.split())
                block = builder.add("heading", paragraph.text, level=paragraph.level)
            if block is not None and block.end - block.start == len(text):
                builder.boxes.extend(_place_boxes(paragraph.lines, text, block.start, number))
        builder.end_page()
    if len(unreadable) == page_count:
        raise CorruptContentError(
            "PDF pages could not be read; the file is damaged", code="corrupt_pdf"
        )
    if builder.block_count == 0:
        raise EmptyContentError(
            f"PDF has {page_count:,} page(s) but no extractable text; it is probably "
            "scanned images, and OCR is not supported. Upload a PDF with a text layer",
            code="pdf_no_text",
        )
    if unreadable:
        builder.metadata["unreadable_pages"] = ",".join(map(str, unreadable))
    return title


def _open(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedContentError(
                "PDF is password-protected; remove the password and upload again",
                code="pdf_encrypted",
            ) from exc
        if exc.err_code == pdfium_c.FPDF_ERR_SECURITY:
            raise EncryptedContentError(
                "PDF uses an unsupported encryption scheme; save an unencrypted copy and "
                "upload again",
                code="pdf_encrypted",
            ) from exc
        raise CorruptContentError(
            "PDF is damaged or incomplete and cannot be opened; upload the original file again",
            code="corrupt_pdf",
        ) from exc


def _read_page(pdf: pdfium.PdfDocument, index: int) -> _Page:
    page = pdf[index]
    try:
        width, height = page.get_width(), page.get_height()
        left, bottom, right, top = page.get_bbox()  # the crop box within the media box
        frame = _Frame(left, bottom, right, top, rotation=page.get_rotation() % 360)
        textpage = page.get_textpage()
        try:
            lines = _lines(textpage, frame)
        finally:
            textpage.close()
    finally:
        page.close()
    return _Page(width=width, height=height, paragraphs=_paragraphs(lines))


class _FontReader:
    """Reads whether a char's font is bold, caching the answer per font name."""

    def __init__(self, textpage: pdfium.PdfTextPage) -> None:
        self._textpage = textpage
        self._buffer = ctypes.create_string_buffer(256)
        self._flags = ctypes.c_int()
        self._bold: dict[bytes, bool] = {}

    def bold(self, index: int) -> bool:
        size = pdfium_c.FPDFText_GetFontInfo(
            self._textpage, index, self._buffer, len(self._buffer), ctypes.byref(self._flags)
        )
        if self._flags.value & _FORCE_BOLD_FLAG:
            return True
        if not 0 < size <= len(self._buffer):
            return False
        name = self._buffer.value
        bold = self._bold.get(name)
        if bold is None:
            bold = self._bold[name] = _BOLD_FONT.search(name) is not None
        return bold


def _lines(textpage: pdfium.PdfTextPage, frame: _Frame) -> list[_Line]:
    raw = textpage.get_text_range()
    # Char boxes are looked up by index, which is only valid when the text maps 1:1 to
    # pdfium's char list (nearly always); otherwise fall back to text-only splitting.
    positioned = len(raw) == textpage.count_chars()
    fonts = _FontReader(textpage)
    lines: list[_Line] = []
    offset = 0
    for piece in re.split(r"(\r\n|\n|\r)", raw):
        start, offset = offset, offset + len(piece)
        if piece in ("\r\n", "\n", "\r"):
            continue
        text = piece.translate(_LIGATURES)
        if not text.strip():
            lines.append(_Line(""))  # an explicit blank line: a paragraph break
            continue
        line = _Line(text)
        if positioned:
            first = start + len(piece) - len(piece.lstrip())
            # The loose box spans the font's ascent to descent: about the font size.
            head = textpage.get_charbox(first, loose=True)
            tail = textpage.get_charbox(start + len(piece.rstrip()) - 1, loose=True)
            left, bottom, _, top = head
            line.bottom, line.height, line.left = bottom, top - bottom, left
            line.right = tail[2]
            _read_style(textpage, fonts, piece, start, first, line)
            if _HYPHEN_JOIN in piece:
                line.runs = _hyphen_runs(textpage, frame, piece, start)
            else:
                box = frame.box(*_union(head, tail))
                line.runs = [(0, len(text), box)] if box else []
        lines.append(line)
    return lines


def _union(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _hyphen_runs(
    textpage: pdfium.PdfTextPage, frame: _Frame, piece: str, start: int
) -> list[tuple[int, int, _Box]]:
    """A run per visual line of a line pdfium joined at hyphens (``_HYPHEN_JOIN``).

    Each hyphen stays with the text before it: it is drawn at that line's end.
    """
    runs: list[tuple[int, int, _Box]] = []
    end = 0  # in the line's text, whose ligatures are expanded
    position = 0  # in ``piece``, pdfium's text
    for segment in re.findall(f"[^{_HYPHEN_JOIN}]*{_HYPHEN_JOIN}|[^{_HYPHEN_JOIN}]+", piece):
        first = start + position + len(segment) - len(segment.lstrip())
        last = start + position + len(segment.rstrip()) - 1
        position += len(segment)
        begin, end = end, end + len(segment.translate(_LIGATURES))
        if first > last:
            continue  # blank
        try:
            head = textpage.get_charbox(first, loose=True)
            box = frame.box(*_union(head, textpage.get_charbox(last, loose=True)))
        except pdfium.PdfiumError:
            return []  # a box is an extra: never lose the page's text over one
        if box is not None:
            runs.append((begin, end, box))
    return runs


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


def _read_style(
    textpage: pdfium.PdfTextPage,
    fonts: _FontReader,
    piece: str,
    start: int,
    first: int,
    line: _Line,
) -> None:
    """Set the line's font size and boldness from its first and last word characters.

    A bullet or symbol font before the words would misstate the size; a bold run-in
    heading followed by plain text is not a bold line.
    """
    word = _WORD_CHAR.search(piece)
    if word is None:
        line.size = line.height
        return
    head = start + word.start()
    if head == first:
        line.size = line.height
    else:
        _, bottom, _, top = textpage.get_charbox(head, loose=True)
        line.size = top - bottom
    tail = start + len(piece.rstrip()) - 1
    while tail > head and not piece[tail - start].isalnum():
        tail -= 1
    line.bold = fonts.bold(head) and (tail == head or fonts.bold(tail))


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


def _tidy(lines: list[_Line]) -> str:
    """The lines' text, one tidy line each, without the lines that tidy to nothing."""
    return "\n".join(line.tidy for line in lines if line.tidy)


def _tidy_text(text: str) -> str:
    # Line by line is the same as on the joined text: cleaning is per character, and a
    # line holds no "\r" that could pair with the joining "\n".
    text = clean_text(text).replace("\u00ad", "")
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


# --- Headings ------------------------------------------------------------------------


@dataclass
class _Candidate:
    paragraph: _Paragraph
    level: int | None = None  # fixed by wording: PART 1, Item 2, Note 3 (filings only)
    size: float | None = None  # a larger-than-body font; None for bold at body size


def _mark_headings(pages: list[_Page]) -> None:
    """Split headings off their paragraphs and set their ``level`` (see the docstring)."""
    finder = _HeadingFinder.for_document(pages)
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
    _assign_levels(candidates)


def _table_row(text: str) -> bool:
    tokens = text.split()
    return bool(tokens) and bool(_NUMBER.match(tokens[-1]) or _DASH.match(tokens[-1]))


def _assign_levels(candidates: list[_Candidate]) -> None:
    """Rank the heading sizes, largest first; bold at body size is the deepest level."""
    rank: dict[float, int] = {}
    level, top = 0, 0.0  # top: the largest size of the current level
    for size in sorted({c.size for c in candidates if c.size is not None}, reverse=True):
        if not level or size < top * _SAME_LEVEL:
            level, top = level + 1, size
        rank[size] = level
    # In a filing PART and Item are levels 1 and 2 (and Note 3); the others go below.
    filing = any(c.level == 2 for c in candidates)
    offset = 2 if filing else 0
    for c in candidates:
        if c.level is not None and (filing or c.level < 3):
            c.paragraph.level = c.level
        else:
            found = rank[c.size] if c.size is not None else level + 1
            c.paragraph.level = min(found + offset, 6)


class _HeadingFinder:
    """Decides which paragraphs are headings, knowing the document's body font."""

    def __init__(self, body_size: float, body_bold: bool, running: set[tuple[str, int]]):
        self.body_size = body_size
        self.body_bold = body_bold
        self.running = running

    @classmethod
    def for_document(cls, pages: list[_Page]) -> _HeadingFinder | None:
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
        return cls(body_size, bold > total * _BOLD_BODY_SHARE, _running_lines(pages))

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
        groups = _heading_groups(lines[:count])
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
        if len(lines) > _HEADING_MAX_LINES or len(text) > _SEC_HEADING_MAX_CHARS:
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
        if len(lines) <= 2 and _sec_heading(text):
            return _Candidate(paragraph, level=1 if _SEC_PART.match(text) else 2)
        if len(text) > _HEADING_MAX_CHARS:
            return None
        if _SENTENCE_END.search(text) and not _ABBREVIATION_END.search(last):
            return None
        if not all(map(self.heading_style, lines)):
            return None
        size = min(line.size or 0.0 for line in lines)
        note = 3 if _SEC_NOTE.match(text) else None
        bold = not self.body_bold and all(line.bold for line in lines)
        if size >= self.body_size * (_LARGER_BOLD if bold else _LARGER):
            return _Candidate(paragraph, level=note, size=size)
        # Body-size bold text in the right part of the page is a table's column labels.
        left = lines[0].left
        if page_width > 0 and left is not None and left > page_width * _COLUMN_LABEL_LEFT:
            return None
        return _Candidate(paragraph, level=note)


def _sec_heading(text: str) -> bool:
    return bool(_SEC_PART.match(text) or _SEC_ITEM.match(text))


def _numbered_heading(text: str) -> bool:
    return _sec_heading(text) or bool(_SEC_NOTE.match(text))


def _spread(line: _Line) -> bool:
    """Whether the line's words are spread across the page like table column labels."""
    if line.left is None or line.right is None or not line.size:
        return False
    return line.right - line.left > len(line.text.strip()) * line.size * _SPREAD


def _heading_groups(lines: list[_Line]) -> list[list[_Line]]:
    """Split consecutive heading lines into headings: at each PART, Item or Note line,
    after one (unless its text runs on), and where the font size changes."""
    groups: list[list[_Line]] = []
    for line in lines:
        text = line.text.strip()
        if groups:
            group, previous = groups[-1], groups[-1][-1]
            runs_on = _RUNS_ON.search(previous.text) or text[:1].islower()
            same_size = _same_size(previous.size, line.size)
            after_numbered = _numbered_heading(group[0].text.strip()) and not runs_on
            if same_size and not after_numbered and not _numbered_heading(text):
                group.append(line)
                continue
        groups.append([line])
    return groups


def _same_size(a: float | None, b: float | None) -> bool:
    if not a or not b:
        return a == b
    return min(a, b) >= max(a, b) * _SAME_LEVEL


def _running_lines(pages: list[_Page]) -> set[tuple[str, int]]:
    """Line texts (digits masked) repeated at the same height on many pages: running
    headers and footers ("Apple Inc. | Q1 2023 Form 10-Q | 12", "PART II Item 1A")."""
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
    if line.bottom is None or len(line.text) > _SEC_HEADING_MAX_CHARS:
        return None
    return _DIGITS.sub("#", " ".join(line.text.lower().split())), round(line.bottom / _RUNNING_Y)


# A PDF date: D:YYYYMMDDHHmmSS, then Z or +HH'mm' (everything after the year optional).
_PDF_DATE = re.compile(
    r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:([Zz+-])(\d{2})?'?(\d{2})?'?)?"
)


def parse_pdf_date(value: str) -> str | None:
    """A PDF metadata date (``D:20230728100829+00'00'``) as ISO 8601, or None."""
    match = _PDF_DATE.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, sign, tz_hours, tz_minutes = match.groups()
    try:
        offset = dt.timedelta(hours=int(tz_hours or 0), minutes=int(tz_minutes or 0))
        zone = dt.timezone(-offset if sign == "-" else offset)
        moment = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None
    return moment.isoformat()


def _metadata_date(pdf: pdfium.PdfDocument) -> str | None:
    for key in ("CreationDate", "ModDate"):
        try:
            value = pdf.get_metadata_value(key)
        except (pdfium.PdfiumError, UnicodeDecodeError, ValueError):
            continue
        parsed = parse_pdf_date(value) if value else None
        if parsed is not None:
            return parsed
    return None


def _metadata_title(pdf: pdfium.PdfDocument) -> str | None:
    try:
        title = pdf.get_metadata_value("Title")
    except (pdfium.PdfiumError, UnicodeDecodeError, ValueError):
        return None
    title = title.strip()
    # Generators often stamp ids ("0000320193-23-000006") or file names as the title;
    # only something with a few letters in it is worth showing.
    return title if sum(ch.isalpha() for ch in title) >= 3 else None
