"""Optical character recognition: an image in, its text lines out, with confidence and boxes.

The engine is RapidOCR (the PP-OCR text detection and recognition models, run by
onnxruntime on the CPU). Its wheel ships the models themselves, so it runs offline:
nothing is downloaded at run time, which a function without egress (and the local
stack, with no network at all) needs; it needs no system package either (Tesseract
would), and PP-OCR reads the small, dense print of filings well.

Loading the engine costs seconds (onnxruntime, OpenCV and the models), so nothing of it
is imported until a page needs OCR: this module imports only the standard library at
the top, and the engine is created on first use, once per process, under a lock. Pages
are recognised one at a time (the engine changes its settings per call, and a page
already keeps every core busy).

The line order and the grouping into paragraphs are :mod:`shared.parsing.ocr_layout`'s.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

# Lines the recogniser is less sure of than this are dropped (RapidOCR's own default).
MIN_CONFIDENCE = 0.5

_ENGINE_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()
_engine: Any = None


@dataclass(frozen=True)
class OcrLine:
    """One line of recognised text.

    Attributes:
        text: The text as read.
        confidence: The recogniser's score, 0 to 1.
        box: ``(left, top, right, bottom)`` in page units: the image's pixels times the
            ``scale`` given to :func:`recognize`, from the top-left corner, y downwards.
    """

    text: str
    confidence: float
    box: tuple[float, float, float, float]


def recognize(image: Image.Image, *, scale: float = 1.0) -> list[OcrLine]:
    """Read the text lines of an image.

    Args:
        image: The image (any mode; it is read as RGB).
        scale: Page units per pixel, for the boxes (e.g. ``72 / dpi`` for PDF points).

    Returns:
        The lines read with at least :data:`MIN_CONFIDENCE`, in the engine's order
        (top to bottom, roughly); empty when the image holds no text.
    """
    engine = _get_engine()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    with _RUN_LOCK:
        result = engine(rgb)
    boxes, texts, scores = result.boxes, result.txts, result.scores
    if boxes is None or texts is None or scores is None:
        return []
    lines: list[OcrLine] = []
    for corners, text, score in zip(boxes, texts, scores, strict=True):
        text = str(text).strip()
        if not text or float(score) < MIN_CONFIDENCE:
            continue
        xs = [float(point[0]) for point in corners]
        ys = [float(point[1]) for point in corners]
        box = (min(xs) * scale, min(ys) * scale, max(xs) * scale, max(ys) * scale)
        lines.append(OcrLine(text, round(float(score), 4), box))
    return lines


def _get_engine() -> Any:
    """The process's OCR engine, created on first use (thread-safe)."""
    global _engine
    if _engine is None:
        with _ENGINE_LOCK:
            if _engine is None:
                _engine = _create_engine()
    return _engine


def _create_engine() -> Any:
    from rapidocr import RapidOCR

    return RapidOCR(
        params={
            "Global.log_level": "warning",
            # Lines are read as printed: pages are upright (a rotated PDF page is
            # rendered upright), and the per-line 180-degree check adds a model run.
            "Global.use_cls": False,
            # The caller chooses the resolution (ParseLimits.ocr_max_page_pixels); the
            # engine's own downscaling of anything over 2000 pixels would blur small print.
            "Global.max_side_len": 8000,
            "Global.text_score": MIN_CONFIDENCE,
        }
    )
