"""OCR results in the page model every paged parser shares: lines, paragraphs.

The engine (:mod:`shared.parsing.ocr`) reports text boxes, often several on one printed
line (a table's cells, a label and its value). Boxes that overlap vertically by at least
half their height are one band, read left to right: a :class:`~shared.parsing.pdf_model._Line`
with a run, and so a box, per piece. Bands then go through the same paragraph grouping
as a PDF's lines (:func:`shared.parsing.pdf_layout._paragraphs`), by their vertical
gaps, so OCR'd text gets paragraphs, headings and citation boxes as a text layer does.

Side-by-side columns of prose are read band by band across both columns: scans of
filings, letters and forms are single-column, and a table stays readable a line per band.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from shared.parsing.ocr import OcrLine, recognize
from shared.parsing.pdf_layout import _paragraphs
from shared.parsing.pdf_model import _Box, _Line, _Page

if TYPE_CHECKING:
    from PIL import Image

# Two boxes are on one band when they overlap vertically by this share of the shorter.
_BAND_OVERLAP = 0.5


def ocr_page(image: Image.Image, *, width: float, height: float) -> tuple[_Page, list[float]]:
    """OCR an image of a whole page into a page of paragraphs with line boxes.

    Args:
        image: The page as pixels.
        width: The page's width in page units (PDF points, or pixels for an image);
            boxes are scaled from the image's pixels to it.
        height: The page's height in page units.

    Returns:
        The page, and the confidence of each line read (for the document's metadata).
    """
    scale = width / image.width if image.width else 1.0
    found = recognize(image, scale=scale)
    lines = [_band_line(band, width, height) for band in _bands(found)]
    page = _Page(width=width, height=height, paragraphs=_paragraphs(lines))
    return page, [line.confidence for line in found]


def _bands(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Group boxes into printed bands, top to bottom, each left to right."""
    bands: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda item: (item.box[1] + item.box[3]) / 2):
        if bands and _same_band(bands[-1][0], line):
            bands[-1].append(line)
        else:
            bands.append([line])
    return [sorted(band, key=lambda item: item.box[0]) for band in bands]


def _same_band(anchor: OcrLine, line: OcrLine) -> bool:
    # Against the band's first box, so a slanted band cannot creep into the next one.
    overlap = min(anchor.box[3], line.box[3]) - max(anchor.box[1], line.box[1])
    shorter = min(anchor.box[3] - anchor.box[1], line.box[3] - line.box[1])
    return shorter > 0 and overlap >= _BAND_OVERLAP * shorter


def _band_line(band: list[OcrLine], width: float, height: float) -> _Line:
    """One band as a line: its pieces joined by spaces, a run per piece."""
    runs: list[tuple[int, int, _Box]] = []
    parts: list[str] = []
    offset = 0
    for piece in band:
        if parts:
            offset += 1  # the joining space
        box = _clip(piece.box, width, height)
        if box is not None:
            runs.append((offset, offset + len(piece.text), box))
        parts.append(piece.text)
        offset += len(piece.text)
    line = _Line(" ".join(parts))
    top = min(piece.box[1] for piece in band)
    bottom = max(piece.box[3] for piece in band)
    # The layout model's y grows upwards from the page's bottom, as in PDF user space.
    line.bottom, line.height = height - bottom, bottom - top
    line.left, line.right = band[0].box[0], max(piece.box[2] for piece in band)
    line.size = statistics.median(piece.box[3] - piece.box[1] for piece in band)
    line.runs = runs
    return line


def _clip(box: tuple[float, float, float, float], width: float, height: float) -> _Box | None:
    """The box inside the page, to 0.1 unit; None if nothing of it is on the page."""
    left, top = max(box[0], 0.0), max(box[1], 0.0)
    right, bottom = min(box[2], width), min(box[3], height)
    if right <= left or bottom <= top:
        return None
    return (round(left, 1), round(top, 1), round(right, 1), round(bottom, 1))
