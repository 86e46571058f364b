"""Assemble extracted text and blocks into a :class:`~shared.models.ParsedDocument`.

Every format parser feeds blocks to a :class:`DocumentBuilder`, so the offset
invariants (blocks in order, non-overlapping, ``text[start:end]`` equal to the block's
stripped text, pages covering their blocks) are enforced in one place instead of five.
"""

from __future__ import annotations

import re

from shared.errors import LimitExceededError
from shared.models import Block, BlockKind, PageSpan, ParsedDocument, TextBox

BLOCK_SEPARATOR = "\n\n"

# Characters that break JSON consumers, Postgres text columns (NUL) or tokenizers, and
# carry no meaning in extracted text: C0 controls except tab/newline, DEL, the Unicode
# non-characters pdfium and broken encoders emit, and lone surrogates.
_JUNK_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\uffff\ud800-\udfff]")
_HORIZONTAL_SPACE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")


def clean_text(text: str) -> str:
    """Normalise line endings and drop control characters, keeping layout whitespace.

    Args:
        text: Raw extracted text.

    Returns:
        The text with Windows and old Mac line endings (and form feeds) turned into
        newlines, and junk characters removed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    return _JUNK_CHARS.sub("", text)


def collapse_whitespace(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to a single space.

    Args:
        text: Text such as a heading or a table cell that must stay on one line.

    Returns:
        The single-line, stripped text.
    """
    return " ".join(clean_text(text).split())


def tidy_lines(text: str) -> str:
    """Collapse horizontal whitespace inside lines and squeeze blank lines.

    Line structure is kept on purpose: in PDFs it is what makes tables readable.

    Args:
        text: Multi-line text.

    Returns:
        The text with each line's spaces collapsed and stripped, and no blank lines.
    """
    text = clean_text(text)
    lines = (_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


class DocumentBuilder:
    """Append blocks to one text, separated by blank lines, recording their offsets.

    Attributes:
        content_type: The MIME type the finished document reports.
    """

    def __init__(self, content_type: str, *, max_chars: int) -> None:
        """Create an empty builder.

        Args:
            content_type: The detected MIME type.
            max_chars: Most characters of text allowed; exceeding it raises
                :class:`LimitExceededError` as soon as it happens, so a hostile document
                cannot make us build a huge string first.
        """
        self.content_type = content_type
        self._max_chars = max_chars
        self._parts: list[str] = []
        self._length = 0
        self._blocks: list[Block] = []
        self._pages: list[PageSpan] = []
        self._page: int | None = None
        self._page_size: tuple[float | None, float | None] = (None, None)
        self._page_start_block = 0
        # Format parsers may record string facts here (e.g. unreadable PDF pages).
        self.metadata: dict[str, str] = {}
        # Parsers that know the layout (PDF) append line boxes here, in text order.
        self.boxes: list[TextBox] = []

    @property
    def block_count(self) -> int:
        """Number of blocks added so far."""
        return len(self._blocks)

    def add(self, kind: BlockKind, text: str, *, level: int | None = None) -> Block | None:
        """Append one block; empty (whitespace-only) text is skipped.

        Args:
            kind: The block kind.
            text: The block's text; it is cleaned and stripped here.
            level: Heading level (clamped to 1..6); ignored for other kinds.

        Returns:
            The recorded block, or ``None`` when the text was empty.

        Raises:
            LimitExceededError: If the text grows beyond ``max_chars``.
        """
        text = clean_text(text).strip()
        if kind == "heading":
            # A heading is one line: chunkers put it in a heading path.
            text = " ".join(text.split())
            level = min(max(level or 1, 1), 6)
        elif kind == "code":
            level = None  # blank lines inside code are meaningful: keep them
        else:
            level = None
            # A blank line inside a block would read as a block boundary downstream.
            text = _BLANK_LINES.sub("\n", text)
        if not text:
            return None
        if self._parts:
            self._append(BLOCK_SEPARATOR)
        start = self._length
        self._append(text)
        block = Block(kind=kind, start=start, end=self._length, page=self._page, level=level)
        self._blocks.append(block)
        return block

    def begin_page(
        self, number: int, *, width: float | None = None, height: float | None = None
    ) -> None:
        """Start a page: blocks added until :meth:`end_page` belong to it.

        Args:
            number: The 1-based page number.
            width: The page's displayed width in points, if known.
            height: The page's displayed height in points, if known.
        """
        self._page = number
        self._page_size = (width, height)
        self._page_start_block = len(self._blocks)

    def end_page(self) -> None:
        """Close the current page and record its span (empty pages get an empty span)."""
        if self._page is None:
            return
        page_blocks = self._blocks[self._page_start_block :]
        if page_blocks:
            start, end = page_blocks[0].start, page_blocks[-1].end
        else:
            start = end = self._length
        width, height = self._page_size
        self._pages.append(
            PageSpan(number=self._page, start=start, end=end, width=width, height=height)
        )
        self._page = None

    def build(
        self, *, title: str | None = None, metadata: dict[str, str] | None = None
    ) -> ParsedDocument:
        """Return the finished document.

        Args:
            title: The document's declared title, if any.
            metadata: Extra string metadata.

        Returns:
            The parsed document.
        """
        self.end_page()
        title = collapse_whitespace(title) if title else None
        return ParsedDocument(
            content_type=self.content_type,
            text="".join(self._parts),
            blocks=self._blocks,
            pages=self._pages,
            boxes=self.boxes,
            title=title or None,
            metadata={**self.metadata, **(metadata or {})},
        )

    def _append(self, piece: str) -> None:
        if self._length + len(piece) > self._max_chars:
            raise LimitExceededError(
                f"The document's text exceeds the limit of {self._max_chars:,} characters; "
                "split it into smaller documents and upload them separately",
                code="text_too_long",
            )
        self._parts.append(piece)
        self._length += len(piece)


def markdown_table(rows: list[list[str]]) -> str:
    """Render rows as a Markdown pipe table, the first row as header.

    Cells are collapsed to one line and pipes escaped, so the table always parses.
    Ragged rows are padded; a table with no non-empty cell renders as ``""``.

    Args:
        rows: Cell texts, row by row.

    Returns:
        The Markdown table text.
    """
    cleaned = [[collapse_whitespace(cell).replace("|", "\\|") for cell in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    width = max(len(row) for row in cleaned)
    padded = [row + [""] * (width - len(row)) for row in cleaned]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + " --- |" * width]
    lines.extend("| " + " | ".join(row) + " |" for row in padded[1:])
    return "\n".join(lines)
