"""OCR: a real 10-Q page as a PNG and as an image-only PDF reads back as its own text.

Word overlap is the share of the page's words (its text layer's, lowercased, counted as
a multiset) that the OCR'd text contains. The page is OCRed twice in this module (PNG,
PDF); the variants (JPEG, WebP, a two-page TIFF) use strips of it, which read quickly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from shared.errors import CorruptContentError, EmptyContentError, LimitExceededError
from shared.models import ParsedDocument
from shared.parsing import JPEG, PDF, PNG, TIFF, WEBP, parse_document
from tests.support.ocr_pages import (
    ScannedPage,
    encode,
    image_pdf,
    png_claiming,
    scan_page,
    word_overlap,
)
from tests.unit import parsing_fixtures as fx

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scanned(corpus: Path) -> ScannedPage:
    return scan_page(corpus)


@pytest.fixture(scope="module")
def from_png(scanned: ScannedPage) -> ParsedDocument:
    return parse_document(encode(scanned.image, "PNG"), filename="page.png")


@pytest.fixture(scope="module")
def from_pdf(scanned: ScannedPage) -> ParsedDocument:
    return parse_document(image_pdf(scanned.image), filename="scan.pdf")


def _strip(scanned: ScannedPage, first_words: str, lines: int = 2) -> Image.Image:
    """A full-width strip of the page image: ``lines`` lines from the one so starting."""
    top = scanned.lines[first_words][1]  # the line's loose box: ascent to descent, ~8 pt
    scale = scanned.image.height / scanned.height
    bottom = top + 8.7 * (lines - 1) + 8.3  # body lines sit 8.4 to 9 points apart
    top -= 2
    return scanned.image.crop((0, int(top * scale), scanned.image.width, int(bottom * scale)))


def test_a_png_of_a_page_reads_as_the_page_with_boxes_in_pixels(
    scanned: ScannedPage, from_png: ParsedDocument
) -> None:
    assert from_png.content_type == PNG
    assert word_overlap(scanned.text, from_png.text) >= 0.9
    [page] = from_png.pages
    assert (page.number, page.width, page.height) == (1, *map(float, scanned.image.size))
    assert from_png.metadata["ocr_pages"] == "1"
    assert 0.5 <= float(from_png.metadata["ocr_confidence"]) <= 1
    assert len(from_png.boxes) >= 10, "a box per OCR'd line"
    width, height = page.width or 0, page.height or 0
    for box in from_png.boxes:
        assert box.page == 1
        assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
        assert from_png.text[box.start : box.end].strip()
    assert len([b for b in from_png.blocks if b.kind == "paragraph"]) >= 2, "lines grouped"


def test_an_image_only_pdf_is_read_by_ocr_with_boxes_in_points_where_the_text_was(
    scanned: ScannedPage, from_pdf: ParsedDocument
) -> None:
    assert from_pdf.content_type == PDF
    assert word_overlap(scanned.text, from_pdf.text) >= 0.9
    [page] = from_pdf.pages
    assert page.width == pytest.approx(scanned.width, abs=1)
    assert page.height == pytest.approx(scanned.height, abs=1)
    assert from_pdf.metadata["ocr_pages"] == "1"
    assert from_pdf.boxes and {box.page for box in from_pdf.boxes} == {1}
    width, height = page.width or 0, page.height or 0
    for box in from_pdf.boxes:
        assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
    # Each line's box starts where the original page drew that line (PDF points).
    matched = 0
    for first_words, (left, top) in scanned.lines.items():
        boxes = [b for b in from_pdf.boxes if from_pdf.text.startswith(first_words, b.start)]
        if not boxes:
            continue
        assert boxes[0].x0 == pytest.approx(left, abs=4), first_words
        assert boxes[0].y0 == pytest.approx(top, abs=6), first_words
        matched += 1
    assert matched >= len(scanned.lines) * 0.8


@pytest.mark.parametrize(
    ("fmt", "content_type", "options"),
    [("JPEG", JPEG, {"quality": 90}), ("WEBP", WEBP, {"quality": 90})],
)
def test_jpeg_and_webp_are_read(
    scanned: ScannedPage, fmt: str, content_type: str, options: dict[str, object]
) -> None:
    strip = _strip(scanned, "Intel disputes")
    parsed = parse_document(encode(strip, fmt, **options))
    assert parsed.content_type == content_type
    assert "Intel disputes" in parsed.text and "asserted patent" in parsed.text
    assert parsed.boxes and parsed.pages[0].width == strip.width


def test_a_photo_turned_by_its_exif_orientation_is_read_upright(scanned: ScannedPage) -> None:
    strip = _strip(scanned, "Intel disputes")
    # Stored on its side, with the tag (6: rotate 90 degrees clockwise) that turns it back.
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = strip.transpose(Image.Transpose.ROTATE_90)
    parsed = parse_document(encode(sideways, "JPEG", quality=90, exif=exif.tobytes()))
    assert "Intel disputes" in parsed.text
    assert (parsed.pages[0].width, parsed.pages[0].height) == tuple(map(float, strip.size))


def test_a_two_page_tiff_is_two_pages(scanned: ScannedPage) -> None:
    first, second = _strip(scanned, "Intel disputes"), _strip(scanned, "Trial is", 3)
    data = encode(first, "TIFF", save_all=True, append_images=[second], compression="tiff_lzw")
    parsed = parse_document(data, filename="fax.tif")
    assert parsed.content_type == TIFF
    assert [page.number for page in parsed.pages] == [1, 2]
    one, two = (parsed.text[page.start : page.end] for page in parsed.pages)
    assert "Intel disputes" in one and "Trial is scheduled" in two
    assert {box.page for box in parsed.boxes} == {1, 2}
    assert parsed.metadata["ocr_pages"] == "1,2"


@pytest.mark.parametrize(("width", "height"), [(4_000, 4_000), (200_000, 200_000)])
def test_a_too_large_image_is_refused_before_it_is_decoded(width: int, height: int) -> None:
    with pytest.raises(LimitExceededError) as info:
        parse_document(png_claiming(width, height), limits=fx.limits(max_image_pixels=10**7))
    assert info.value.code == "image_too_large"
    assert "pixels" in str(info.value) and "10,000,000" in str(info.value)


def test_too_many_pages_for_ocr_are_refused_before_any_is_read() -> None:
    blank = Image.new("RGB", (200, 100), "white")
    tiff = encode(blank, "TIFF", save_all=True, append_images=[blank, blank])
    pdf = encode(blank, "PDF", save_all=True, append_images=[blank, blank])
    for data in (tiff, pdf):
        with pytest.raises(LimitExceededError, match=r"3 .*at most 2") as info:
            parse_document(data, limits=fx.limits(max_ocr_pages=2))
        assert info.value.code == "too_many_ocr_pages"


def test_ocr_over_its_time_budget_stops_between_pages() -> None:
    blank = Image.new("RGB", (200, 100), "white")
    tiff = encode(blank, "TIFF", save_all=True, append_images=[blank])
    pdf = encode(blank, "PDF", save_all=True, append_images=[blank])
    for data in (tiff, pdf):
        with pytest.raises(LimitExceededError, match="with 1 of 2 pages left") as info:
            parse_document(data, limits=fx.limits(max_ocr_seconds=1e-6))
        assert info.value.code == "ocr_too_slow"


def test_a_blank_image_has_no_text_and_a_damaged_one_is_corrupt() -> None:
    blank = encode(Image.new("RGB", (300, 200), "white"), "PNG")
    with pytest.raises(EmptyContentError, match="PNG image contains no text"):
        parse_document(blank)
    with pytest.raises(EmptyContentError, match="OCR found none") as info:
        parse_document(encode(Image.new("RGB", (300, 200), "white"), "PDF"))
    assert info.value.code == "pdf_no_text"
    photo = encode(Image.effect_noise((400, 400), 64).convert("RGB"), "JPEG")
    with pytest.raises(CorruptContentError) as corrupt:
        parse_document(photo[: len(photo) // 2])
    assert corrupt.value.code == "corrupt_image"


def test_parsing_a_pdf_with_a_text_layer_never_loads_the_ocr_engine() -> None:
    code = (
        "import json, sys\n"
        "from shared.parsing import parse_document\n"
        "from tests.unit import parsing_fixtures as fx\n"
        "parse_document(fx.sample_pdf()); parse_document(fx.sample_docx())\n"
        "print(json.dumps([m for m in ('rapidocr', 'onnxruntime', 'cv2', 'PIL') "
        "if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
