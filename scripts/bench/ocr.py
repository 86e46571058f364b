"""OCR: scanned pages read per second on this machine, and what loading the engine costs.

Pages of the 10-Q corpus (a fixed, mixed set: prose, tables, a table of contents) are
rendered to images and saved as one image-only PDF, the shape of a scanned filing; the
whole parse of that PDF (:func:`shared.parsing.parse_document`: PDFium renders each page
at ``ParseLimits.ocr_dpi``, RapidOCR reads it, lines become paragraphs with boxes) is
timed, so pages per second is what a parse function gets. Each page's word overlap
with its own text layer (the share of its words, lowercased, as a multiset, that the
OCR'd text holds) says what that speed reads.

The engine loads on the first page that needs it; that load (imports and model
sessions) is timed apart, in a fresh interpreter, since a cold parse instance pays it
once. With ``docs/bench/cold_start_before_ocr.json`` present (the cold-start section
saved before OCR existed), the report also sets every target's cold start before and
after side by side.

Usage: .venv/bin/python -m scripts.bench.ocr [--pages 6] [--repeats 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from scripts.bench.common import CORPUS, REPO, RESULTS, median, now, write_section

SECTION = "ocr"
# (filing, page index): prose, a table, a table of contents, more prose, a statement.
PAGES: list[tuple[str, int]] = [
    ("2023 Q3 INTC.pdf", 23),
    ("2023 Q1 AAPL.pdf", 4),
    ("2023 Q1 AAPL.pdf", 2),
    ("2023 Q1 AMZN.pdf", 18),
    ("2023 Q3 MSFT.pdf", 27),
    ("2023 Q2 NVDA.pdf", 3),
]
RENDER_DPI = 150  # the scan's own resolution; the parse renders it again at ocr_dpi

_LOAD_PROBE = (
    "import time, json\n"
    "started = time.perf_counter()\n"
    "from shared.parsing.ocr import _get_engine\n"
    "_get_engine()\n"
    "print(json.dumps({'ms': (time.perf_counter() - started) * 1000}))\n"
)


def _scan(pages: list[tuple[str, int]]) -> tuple[bytes, list[str]]:
    """An image-only PDF of the pages, and each page's own text."""
    import io

    import pypdfium2 as pdfium

    images, texts = [], []
    for filing, index in pages:
        pdf = pdfium.PdfDocument(CORPUS / filing)
        page = pdf[index]
        texts.append(page.get_textpage().get_text_range())
        images.append(page.render(scale=RENDER_DPI / 72).to_pil().convert("RGB"))
        pdf.close()
    buffer = io.BytesIO()
    images[0].save(
        buffer, "PDF", resolution=float(RENDER_DPI), save_all=True, append_images=images[1:]
    )
    return buffer.getvalue(), texts


def word_overlap(original: str, read: str) -> float:
    """The share of ``original``'s words (lowercased, a multiset) found in ``read``."""

    def words(text: str) -> Counter[str]:
        return Counter(re.findall(r"\w+", text.lower()))

    want = words(original)
    return sum((want & words(read)).values()) / max(sum(want.values()), 1)


def _engine_load_ms() -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_PROBE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["ms"])


def _cold_start_rows() -> list[str]:
    """Every target's cold start before OCR and now, if both records are saved."""
    before_path, after_path = RESULTS / "cold_start_before_ocr.json", RESULTS / "cold_start.json"
    if not before_path.exists() or not after_path.exists():
        return []
    before = json.loads(before_path.read_text())
    after = json.loads(after_path.read_text())
    rows = [
        "",
        "Cold start of every target before OCR existed and with it (`import main; "
        "main.<target>`, median ms, from the cold-start section's runs of "
        f"{before['generated_at']} and {after['generated_at']}, back to back). On a "
        "machine shared with other work the milliseconds move with its load; the check "
        "is the heavy libraries each target loads: none loads rapidocr, onnxruntime, "
        "OpenCV or Pillow at import, parse included (they load on the first page that "
        "needs OCR).",
        "",
        "| target | before ms | after ms | heavy libraries loaded after |",
        "|---|---:|---:|---|",
    ]
    ms_before, ms_after = before["metrics"]["targets"], after["metrics"]["targets"]
    heavy_after = after["metrics"]["heavy_libraries"]
    for target, ms in ms_after.items():
        if target in ms_before:
            loaded = ", ".join(heavy_after.get(target, [])) or "none"
            rows.append(f"| {target} | {ms_before[target]:.0f} | {ms:.0f} | {loaded} |")
    return rows


def markdown(
    metrics: dict[str, Any], settings: dict[str, Any], per_page: list[dict[str, Any]]
) -> str:
    """The report section."""
    lines = [
        "## OCR",
        "",
        "Scanned pages (10-Q pages rendered to images, saved as one image-only PDF) parsed "
        f"end to end: **{metrics['pages_per_s']:.3f} pages/s** "
        f"({metrics['s_per_page']:.1f} s a page), word overlap with the pages' own text "
        f"{metrics['word_overlap_min']:.1%} at worst. Loading the engine (rapidocr, "
        f"onnxruntime, OpenCV, the PP-OCR models) on the first page: "
        f"{metrics['engine_load_ms']:,.0f} ms, once per instance.",
        "",
        f"- Command: `{settings['command']}`; {settings['date']}; {settings['cpus']} CPUs "
        f"(load average {settings['load_average']} at the start: the machine is shared, "
        "so these are pessimistic).",
        f"- {len(per_page)} pages, scanned at {RENDER_DPI} dpi, OCRed at "
        f"{settings['ocr_dpi']} dpi (`RAGLINE_PARSE_OCR_DPI`); {settings['repeats']} timed "
        "parse(s) after one warm-up parse that loads the engine.",
        "",
        "| page | words | word overlap |",
        "|---|---:|---:|",
    ]
    for row in per_page:
        lines.append(f"| {row['page']} | {row['words']} | {row['overlap']:.1%} |")
    lines += _cold_start_rows()
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure, print a summary, and write the section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=len(PAGES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 pages (smoke test)")
    args = parser.parse_args()
    pages = PAGES[: 2 if args.quick else max(1, min(args.pages, len(PAGES)))]

    from shared.config import get_parse_limits
    from shared.parsing import parse_document

    load = "/".join(f"{value:.2f}" for value in os.getloadavg())
    engine_ms = _engine_load_ms()
    data, texts = _scan(pages)
    parse_document(data, filename="warm-up.pdf")  # loads the engine in this process
    seconds = []
    parsed = None
    for _ in range(args.repeats):
        started = time.perf_counter()
        parsed = parse_document(data, filename="scan.pdf")
        seconds.append(time.perf_counter() - started)
        print(f"{len(pages)} pages in {seconds[-1]:.1f} s", flush=True)
    assert parsed is not None
    per_page: list[dict[str, Any]] = []
    overlaps: list[float] = []
    for (filing, index), text, span in zip(pages, texts, parsed.pages, strict=True):
        overlaps.append(round(word_overlap(text, parsed.text[span.start : span.end]), 4))
        per_page.append(
            {"page": f"{filing} p.{index + 1}", "words": len(text.split()), "overlap": overlaps[-1]}
        )
    elapsed = median(seconds)
    metrics = {
        "pages_per_s": round(len(pages) / elapsed, 4),
        "s_per_page": round(elapsed / len(pages), 2),
        "engine_load_ms": round(engine_ms, 1),
        "word_overlap_min": min(overlaps),
        "word_overlap_mean": round(sum(overlaps) / len(overlaps), 4),
    }
    settings = {
        "command": " ".join([".venv/bin/python -m scripts.bench.ocr", *sys.argv[1:]]),
        "date": now(),
        "cpus": os.cpu_count(),
        "load_average": load,
        "repeats": args.repeats,
        "ocr_dpi": get_parse_limits().ocr_dpi,
        "render_dpi": RENDER_DPI,
        "pages": [f"{filing}#{index}" for filing, index in pages],
    }
    write_section(
        SECTION,
        metrics,
        markdown(metrics, settings, per_page),
        settings=settings,
        details={"seconds": seconds, "per_page": per_page},
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
