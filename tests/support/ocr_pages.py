"""A real 10-Q page as a scan: rendered to pixels, saved as images or an image-only PDF.

The OCR tests read these back and compare with the page's own text layer.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

# Intel's 2023 Q3 10-Q, page 24 (index 23): eleven lines of prose on one lawsuit, so the
# page is quick to OCR and a question about it has one answer ("Dusseldorf").
FILING = "2023 Q3 INTC.pdf"
PAGE_INDEX = 23
DPI = 150


@dataclass(frozen=True)
class ScannedPage:
    """A page's text layer, its size in points, and the page rendered as an image."""

    text: str
    width: float
    height: float
    image: Image.Image
    lines: dict[str, tuple[float, float]]  # a line's first words -> its (left, top) in points


def scan_page(corpus: Path, filing: str = FILING, index: int = PAGE_INDEX) -> ScannedPage:
    """Render one corpus page at :data:`DPI`, keeping its text and line positions."""
    pdf = pdfium.PdfDocument(corpus / filing)
    try:
        page = pdf[index]
        width, height = page.get_size()
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        lines: dict[str, tuple[float, float]] = {}
        offset = 0
        for line in text.splitlines(keepends=True):
            stripped = line.strip()
            if len(stripped) > 20:
                at = offset + len(line) - len(line.lstrip())
                left, _, _, top = textpage.get_charbox(at, loose=True)
                lines[" ".join(stripped.split()[:2])] = (left, height - top)
            offset += len(line)
        image = page.render(scale=DPI / 72).to_pil().convert("RGB")
        textpage.close()
        page.close()
    finally:
        pdf.close()
    return ScannedPage(text, width, height, image, lines)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """The image saved in ``fmt`` (PNG, JPEG, WEBP, TIFF, PDF) by Pillow."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def image_pdf(image: Image.Image, dpi: int = DPI) -> bytes:
    """A PDF whose only page is ``image`` (no text layer), sized as printed at ``dpi``."""
    return encode(image, "PDF", resolution=float(dpi))


def words(text: str) -> Counter[str]:
    """The text's words, lowercased, as a multiset."""
    return Counter(re.findall(r"\w+", text.lower()))


def word_overlap(original: str, read: str) -> float:
    """The share of ``original``'s words (a multiset, lowercased) found in ``read``."""
    want = words(original)
    return sum((want & words(read)).values()) / max(sum(want.values()), 1)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height``, with 8 x 8 pixels of data."""
    data = encode(Image.new("L", (8, 8), 255), "PNG")
    header = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    chunk = struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))
    return data[:8] + chunk + data[33:]
