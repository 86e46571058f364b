"""DOCX parsing with python-docx, behind a zip-bomb guard.

The body is read in XML element order so paragraphs and tables stay interleaved as the
author wrote them (python-docx's ``paragraphs``/``tables`` lists lose that order).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator

import docx
from docx.document import Document as DocxDocument
from docx.opc.exceptions import OpcError
from docx.oxml.ns import qn
from docx.styles.style import BaseStyle, ParagraphStyle
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from shared.config import ParseLimits
from shared.errors import (
    CorruptContentError,
    EncryptedContentError,
    LimitExceededError,
    UnsupportedContentError,
)
from shared.parsing.builder import DocumentBuilder, markdown_table

# Ratios are only meaningful for big members: tiny XML parts compress extremely well
# (a 2 KiB run of spaces) without being dangerous.
_RATIO_MIN_BYTES = 1024 * 1024
_MAX_MEMBERS = 10_000
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)
_TAG_P, _TAG_TBL, _TAG_SDT = qn("w:p"), qn("w:tbl"), qn("w:sdt")
_TAG_SDT_CONTENT, _TAG_NUMPR, _TAG_ILVL = qn("w:sdtContent"), qn("w:numPr"), qn("w:ilvl")
_TAG_OUTLINE, _TAG_R = qn("w:outlineLvl"), qn("w:r")
# Runs under these are deleted text (tracked changes) and must not be read.
_DELETED = frozenset({qn("w:del"), qn("w:moveFrom")})


def check_zip_bomb(data: bytes, limits: ParseLimits) -> None:
    """Reject archives that would expand beyond the limits, before anything inflates.

    Sizes come from the central directory; :mod:`zipfile` never returns more than a
    member's declared size, so a lying header cannot smuggle extra bytes past this.

    Args:
        data: The DOCX bytes.
        limits: The parse limits.

    Raises:
        LimitExceededError: On excessive total size, member count or compression ratio.
        EncryptedContentError: If archive members are encrypted (ZIP encryption).
        CorruptContentError: If the archive cannot be read.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise _corrupt() from exc
    if len(members) > _MAX_MEMBERS:
        raise LimitExceededError(
            f"DOCX archive has {len(members):,} entries (limit {_MAX_MEMBERS:,}); "
            "it looks like a zip bomb and was rejected",
            code="zip_bomb",
        )
    if any(member.flag_bits & 0x1 for member in members):
        raise EncryptedContentError(
            "DOCX archive is encrypted; remove the password and upload again",
            code="office_encrypted",
        )
    total = sum(member.file_size for member in members)
    if total > limits.max_unzipped_bytes:
        raise LimitExceededError(
            f"DOCX would expand to {total / 2**20:,.1f} MiB when unzipped (limit "
            f"{limits.max_unzipped_bytes / 2**20:,.1f} MiB); it looks like a zip bomb",
            code="zip_bomb",
        )
    for member in members:
        if member.file_size <= _RATIO_MIN_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise LimitExceededError(
                f"DOCX member {member.filename!r} expands {ratio:,.0f}x when unzipped (limit "
                f"{limits.max_compression_ratio:,.0f}x); it looks like a zip bomb",
                code="zip_bomb",
            )


def parse_docx(data: bytes, builder: DocumentBuilder, limits: ParseLimits) -> str | None:
    """Extract headings, paragraphs, lists and tables from a DOCX in document order.

    Args:
        data: The DOCX bytes.
        builder: Receives the blocks.
        limits: The parse limits (zip-bomb guard).

    Returns:
        The core-properties title, else the first ``Title``-styled paragraph.

    Raises:
        LimitExceededError: For zip bombs.
        CorruptContentError: If the package or its XML is damaged.
        UnsupportedContentError: For macro-enabled documents or templates.
    """
    check_zip_bomb(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
        return _Reader(document, builder).read()
    except ValueError as exc:
        if "is not a Word file" in str(exc):
            raise UnsupportedContentError(
                "Word file is a macro-enabled document or a template (.docm/.dotx), which "
                "cannot be parsed; save it as a plain .docx and upload again",
                code="unsupported_type",
            ) from exc
        raise _corrupt() from exc
    except (
        OpcError,
        KeyError,
        AttributeError,
        IndexError,
        etree.LxmlError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,  # zipfile: an unknown compression method
        OSError,
        EOFError,
    ) as exc:
        # python-docx assumes well-formed parts; a missing part or element surfaces as
        # KeyError/AttributeError deep inside it, which for us means a damaged file.
        raise _corrupt() from exc


def _corrupt() -> CorruptContentError:
    return CorruptContentError(
        "DOCX file is damaged or incomplete and cannot be read; open and re-save it in "
        "Word, then upload again",
        code="corrupt_docx",
    )


class _Reader:
    """Walk one document's body, grouping list paragraphs into list blocks."""

    def __init__(self, document: DocxDocument, builder: DocumentBuilder) -> None:
        self._document = document
        self._builder = builder
        self._list: list[str] = []
        self._title: str | None = None

    def read(self) -> str | None:
        for item in self._body_items():
            if isinstance(item, Table):
                self._flush_list()
                self._builder.add("table", markdown_table(_table_rows(item)))
            else:
                self._paragraph(item)
        self._flush_list()
        properties = self._document.core_properties
        # When the document says it was written: answers about "the latest" use it.
        written = properties.created or properties.modified
        if written is not None:
            self._builder.metadata["created"] = written.isoformat()
        declared = (properties.title or "").strip()
        return declared or self._title

    def _body_items(self) -> Iterator[Paragraph | Table]:
        body = self._document.element.body
        # Content controls (w:sdt) wrap ordinary paragraphs and tables; look inside.
        stack = list(reversed(list(body)))
        while stack:
            element = stack.pop()
            if element.tag == _TAG_P:
                yield Paragraph(element, self._document._body)
            elif element.tag == _TAG_TBL:
                yield Table(element, self._document._body)
            elif element.tag == _TAG_SDT:
                content = element.find(_TAG_SDT_CONTENT)
                if content is not None:
                    stack.extend(reversed(list(content)))

    def _paragraph(self, paragraph: Paragraph) -> None:
        text = paragraph_text(paragraph)
        if not text.strip():
            return  # empty paragraphs are spacing, and must not break a list
        style = _style_names(paragraph.style)
        level = _heading_level(paragraph, style)
        if level is not None:
            self._flush_list()
            self._builder.add("heading", text, level=level)
            if self._title is None and "title" in style:
                self._title = " ".join(text.split())
            return
        depth = _list_depth(paragraph, style)
        if depth is not None:
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            self._list.append("  " * min(depth, 8) + "- " + " ".join(lines))
            return
        self._flush_list()
        self._builder.add("paragraph", text)

    def _flush_list(self) -> None:
        if self._list:
            self._builder.add("list", "\n".join(self._list))
            self._list.clear()


def paragraph_text(paragraph: Paragraph) -> str:
    """Return a paragraph's text, including runs that ``Paragraph.text`` skips.

    python-docx reads only direct runs and hyperlinks, losing tracked insertions
    (``w:ins``), inline content controls, smart tags and simple fields; every run is read
    here instead, except tracked deletions.

    Args:
        paragraph: The paragraph.

    Returns:
        Its text, with tabs and line breaks as python-docx renders them.
    """
    p = paragraph._p
    parts: list[str] = []
    for run in p.iter(_TAG_R):
        deleted = False
        for ancestor in run.iterancestors():
            if ancestor is p:
                break
            if ancestor.tag in _DELETED:
                deleted = True
                break
        if not deleted:
            parts.append(run.text)
    return "".join(parts)


def _style_names(style: BaseStyle | None) -> list[str]:
    # A custom style based on "Heading 2" is still a heading: follow the base chain
    # (bounded, in case a damaged file makes it circular).
    names: list[str] = []
    for _ in range(5):
        if style is None or not style.name:
            break
        names.append(style.name.lower())
        style = style.base_style if isinstance(style, ParagraphStyle) else None
    return names


def _heading_level(paragraph: Paragraph, styles: list[str]) -> int | None:
    for name in styles:
        if name == "title":
            return 1
        match = _HEADING_STYLE.match(name)
        if match:
            return min(int(match.group(1)), 6)
    ppr = paragraph._p.pPr
    outline = ppr.find(_TAG_OUTLINE) if ppr is not None else None
    if outline is not None:
        # Direct outline levels (0-based) mark headings in documents made by other tools.
        level = outline.get(qn("w:val"))
        if level is not None and level.isdigit() and int(level) < 6:
            return int(level) + 1
    return None


def _list_depth(paragraph: Paragraph, styles: list[str]) -> int | None:
    ppr = paragraph._p.pPr
    numpr = ppr.find(_TAG_NUMPR) if ppr is not None else None
    if numpr is not None:
        ilvl = numpr.find(_TAG_ILVL)
        value = ilvl.get(qn("w:val")) if ilvl is not None else "0"
        return int(value) if value and value.isdigit() else 0
    if styles and styles[0].startswith("list"):
        # "List Bullet 2" / "List Number 3" encode the depth in the name.
        last = styles[0].rsplit(" ", 1)[-1]
        return int(last) - 1 if last.isdigit() and int(last) > 1 else 0
    return None


def _table_rows(table: Table) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # python-docx repeats a horizontally merged cell once per grid column;
            # show its text once and keep the columns aligned with empty cells.
            same = previous is not None and cell._tc is previous
            cells.append("" if same else cell.text)
            previous = cell._tc
        rows.append(cells)
    return rows
