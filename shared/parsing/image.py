"""Images (PNG, JPEG, TIFF, WebP) read by OCR: each frame a page, with its line boxes.

Pillow decodes the image; a multi-page TIFF (a fax, a scanner's batch) is one page per
frame. A page's size is the image's size in pixels, turned as its EXIF orientation
says (as browsers display it), so a viewer scales the boxes by ``shown width / width``
as it does a PDF page's.

Hostile images are refused before their pixels are decoded: the frame count and each
frame's width x height come from the headers, and are checked against
:class:`~shared.config.ParseLimits` first (a few kilobytes of PNG can claim gigapixels).
"""

from __future__ import annotations

import io
import math
import time
import warnings
from typing import TYPE_CHECKING

from shared.config import ParseLimits
from shared.errors import CorruptContentError, LimitExceededError
from shared.parsing.builder import DocumentBuilder
from shared.parsing.headings import SEC_FILING_RULES, mark_headings
from shared.parsing.ocr_layout import ocr_page
from shared.parsing.page_blocks import add_pages
from shared.parsing.pdf_model import _Page

if TYPE_CHECKING:
    from PIL import Image


def parse_image(data: bytes, builder: DocumentBuilder, limits: ParseLimits) -> None:
    """OCR every frame of an image into ``builder``, a page per frame.

    Args:
        data: The image's bytes (PNG, JPEG, TIFF or WebP).
        builder: Receives the blocks, page spans (sizes in pixels) and boxes.
        limits: ``max_image_pixels``, ``max_pages``, ``max_ocr_pages``,
            ``max_ocr_seconds`` and ``ocr_max_page_pixels``.

    Raises:
        LimitExceededError: Too many pixels in a frame, too many frames, or OCR over
            its time budget.
        CorruptContentError: An image Pillow cannot decode.
    """
    started = time.monotonic()
    image = _open(data, limits)
    with image:
        frames = int(getattr(image, "n_frames", 1))
        _check_frames(frames, limits)
        pages: list[_Page] = []
        confidences: list[float] = []
        for index in range(frames):
            if index and time.monotonic() - started > limits.max_ocr_seconds:
                raise LimitExceededError(
                    f"OCR of this image took over {limits.max_ocr_seconds:,.0f} s with "
                    f"{frames - index:,} of {frames:,} pages left; split it up",
                    code="ocr_too_slow",
                )
            image.seek(index)
            page, found = _ocr_frame(image, limits)
            pages.append(page)
            confidences.extend(found)
    # As for PDFs: filings' wording marks sections; other text gets its type sizes' headings.
    mark_headings(pages, SEC_FILING_RULES)
    add_pages(builder, pages)
    builder.metadata["ocr_pages"] = ",".join(str(number) for number in range(1, frames + 1))
    if confidences:
        builder.metadata["ocr_confidence"] = f"{sum(confidences) / len(confidences):.3f}"


def _open(data: bytes, limits: ParseLimits) -> Image.Image:
    """Open the image lazily (headers only) and check the first frame's size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns below twice its limit; ours decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _too_large(None, limits) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _corrupt() from exc
    _check_size(image, limits)
    return image


def _check_frames(frames: int, limits: ParseLimits) -> None:
    most = min(limits.max_pages, limits.max_ocr_pages)
    if frames > most:
        raise LimitExceededError(
            f"Image has {frames:,} pages (frames); at most {most:,} are read by OCR in one "
            "document. Split it into smaller files",
            code="too_many_ocr_pages",
        )


def _check_size(image: Image.Image, limits: ParseLimits) -> None:
    if image.width * image.height > limits.max_image_pixels:
        raise _too_large(image.size, limits)


def _ocr_frame(image: Image.Image, limits: ParseLimits) -> tuple[_Page, list[float]]:
    """Decode the current frame, upright and in RGB, and OCR it at most at the pixel budget."""
    from PIL import Image, ImageOps

    _check_size(image, limits)  # a TIFF's frames each have their own size
    try:
        frame = _rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _corrupt() from exc
    width, height = frame.size
    if width * height > limits.ocr_max_page_pixels:
        shrink = math.sqrt(limits.ocr_max_page_pixels / (width * height))
        frame = frame.resize((max(1, int(width * shrink)), max(1, int(height * shrink))))
    return ocr_page(frame, width=float(width), height=float(height))


def _rgb(image: Image.Image) -> Image.Image:
    """The image in RGB, transparent parts on white (as a viewer shows them on a page)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _too_large(size: tuple[int, int] | None, limits: ParseLimits) -> LimitExceededError:
    stated = f"{size[0]:,} x {size[1]:,} pixels" if size else "too many pixels"
    return LimitExceededError(
        f"Image is {stated}; at most {limits.max_image_pixels:,} pixels are allowed. "
        "Scale it down and upload it again",
        code="image_too_large",
    )


def _corrupt() -> CorruptContentError:
    return CorruptContentError(
        "Image is damaged or truncated and cannot be decoded; upload the original file again",
        code="corrupt_image",
    )
