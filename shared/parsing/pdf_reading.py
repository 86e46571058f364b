"""Reading a PDF through PDFium: open it, read each page's lines, styles and boxes.

This is the only module that talks to PDFium (apart from :mod:`shared.parsing.pdf`,
which holds the lock every call runs under). A page comes out as its displayed size
and its lines (:class:`~shared.parsing.pdf_model._Line`): text, position, font size,
boldness and boxes; what the lines mean is for the layout and heading modules.

Each line's box is captured as it is read, for citation viewers to highlight passages:
the union of its first and last characters' loose boxes (font ascent to descent),
which covers a straight line of text in any direction at two PDFium calls per line
(already made for the line's position); a box per character would add about two thirds
to the parse time of a 10-Q.

Font sizes are the loose char box heights (ascent to descent): pdfium's own
FPDFText_GetFontSize ignores some text matrices (it reports 800 for 8pt text in real
filings), the box does not.
"""

from __future__ import annotations

import ctypes
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from shared.errors import CorruptContentError, EncryptedContentError
from shared.parsing.dates import parse_pdf_date
from shared.parsing.pdf_model import _Box, _Line

if TYPE_CHECKING:
    from PIL import Image

# pdfium joins a word hyphenated across two lines into one line of text, marking the
# hyphen with U+FFFE ("mem\ufffebership"): the line gets a box per visual line.
_HYPHEN_JOIN = "\ufffe"
_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
     "\ufb05": "st", "\ufb06": "st"}
)  # fmt: skip

_BOLD_FONT = re.compile(rb"bold|black|heavy|semibold|demi", re.IGNORECASE)
_FORCE_BOLD_FLAG = 1 << 18
_WORD_CHAR = re.compile(r"\w")


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
        """The displayed box of a user-space rectangle, clipped to the page.

        None if nothing of it is on the page.
        """
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


def _read_page(pdf: pdfium.PdfDocument, index: int) -> tuple[float, float, list[_Line]]:
    """The page's displayed width and height and its lines, in PDFium's text order.

    Grouping the lines into paragraphs is layout's job; it needs no PDFium, so the
    caller does it once the page and its text page are closed.
    """
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
    return width, height, lines


def _has_images(pdf: pdfium.PdfDocument, index: int) -> bool:
    """Whether the page draws an image (a page with no text but an image is a scan)."""
    page = pdf[index]
    try:
        images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4)
        return next(iter(images), None) is not None
    finally:
        page.close()


def _render_page(pdf: pdfium.PdfDocument, index: int, dpi: int, max_pixels: int) -> Image.Image:
    """The page as displayed (crop box, rotation), in RGB at ``dpi``.

    A page that would exceed ``max_pixels`` at ``dpi`` is rendered smaller to fit. The
    image owns its pixels: nothing of PDFium's is left to free after this returns.
    """
    page = pdf[index]
    try:
        width, height = page.get_width(), page.get_height()
        scale = dpi / 72
        if width * height * scale * scale > max_pixels:
            scale = math.sqrt(max_pixels / (width * height))
        bitmap = page.render(scale=scale)
        try:
            image: Image.Image = bitmap.to_pil().convert("RGB")
            return image
        finally:
            bitmap.close()
    finally:
        page.close()


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
