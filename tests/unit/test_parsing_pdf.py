"""PDF parsing: pages, paragraphs, headings, line boxes, limits, bad input and a real 10-Q
filing."""

from __future__ import annotations

import io
import json
import os
import re

import pypdfium2 as pdfium
import pytest

from shared.chunking import chunk_document
from shared.errors import (
    CorruptContentError,
    EmptyContentError,
    EncryptedContentError,
    LimitExceededError,
)
from shared.models import ParsedDocument, TextBox
from shared.parsing import PDF, parse_document
from shared.parsing.builder import DocumentBuilder
from shared.parsing.headings import HeadingRules
from shared.parsing.pdf import parse_pdf
from shared.parsing.pdf_layout import _paragraphs
from shared.parsing.pdf_model import _Line, _place_boxes
from shared.tokens import get_counter
from tests.unit import parsing_fixtures as fx
from tests.unit.parsing_fixtures import assert_invariants, texts


def test_pages_and_paragraphs() -> None:
    doc = parse_document(fx.sample_pdf())
    assert doc.content_type == PDF
    assert doc.title == "Sample Quarterly Report"
    assert doc.page_count == 3
    assert texts(doc) == [
        "Quarterly results improved.\nRevenue grew in every segment.",
        "Operating costs were flat.",
        "Page two has one paragraph only.",
        "Risk factors are unchanged.",
        "Legal proceedings: none.",
    ]
    assert [b.page for b in doc.blocks] == [1, 1, 2, 3, 3]
    page_two = doc.pages[1]
    assert doc.text[page_two.start : page_two.end] == "Page two has one paragraph only."
    assert_invariants(doc)


def test_blank_page_gets_an_empty_span() -> None:
    data = fx.build_pdf([fx.paragraph_lines([["One"]]), [], fx.paragraph_lines([["Three"]])])
    doc = parse_document(data)
    assert [(p.number, p.end - p.start) for p in doc.pages] == [(1, 3), (2, 0), (3, 5)]
    assert_invariants(doc)


def test_column_jump_splits_paragraphs() -> None:
    # Two evenly spaced columns drawn one after the other: the second starts back at the top.
    lines: list[fx.PdfLine] = [(72, 700 - 13 * n, 11, f"left line {n}") for n in range(8)]
    lines += [(320, 700 - 13 * n, 11, f"right line {n}") for n in range(8)]
    doc = parse_document(fx.build_pdf([lines]))
    assert [len(text.splitlines()) for text in texts(doc)] == [8, 8]
    assert texts(doc)[1].startswith("right line 0")
    assert_invariants(doc)


def outline(doc: ParsedDocument) -> list[tuple[str, int | None, str]]:
    """(kind, level, text) of every block."""
    return [(b.kind, b.level, doc.text[b.start : b.end]) for b in doc.blocks]


# Enough body lines for the parser to learn the usual line spacing.
BODY = [
    "Net sales grew in every segment and region,",
    "helped by new products and services, while",
    "margins held up well despite the strong",
    "dollar and higher component costs.",
]


def test_headings_from_font_sizes() -> None:
    lines: list[fx.PdfLine] = [
        (72, 720, 20, "Quarterly Report"),
        (72, 685, 14, "Results of Operations"),
        *fx.paragraph_lines([BODY], top=660),
        (72, 590, 11, "Costs were flat."),
        # A table row in a large font stands alone, but numbers make it no heading.
        (72, 555, 14, "Total net sales 117,154 123,945"),
        (72, 520, 14, "Liquidity and Capital Resources"),
        (72, 495, 11, "Cash is ample."),
    ]
    doc = parse_document(fx.build_pdf([lines]))
    assert outline(doc) == [
        ("heading", 1, "Quarterly Report"),
        ("heading", 2, "Results of Operations"),
        ("paragraph", None, "\n".join(BODY)),
        ("paragraph", None, "Costs were flat."),
        ("paragraph", None, "Total net sales 117,154 123,945"),
        ("heading", 2, "Liquidity and Capital Resources"),
        ("paragraph", None, "Cash is ample."),
    ]
    assert_invariants(doc)
    chunks = chunk_document(doc, max_tokens=12, overlap_tokens=0, counter=get_counter())
    assert chunks[0].heading_path == ["Quarterly Report"]
    assert ["Quarterly Report", "Results of Operations"] in [c.heading_path for c in chunks]
    assert chunks[-1].heading_path == ["Quarterly Report", "Liquidity and Capital Resources"]


def test_bold_headings_at_body_size() -> None:
    page = fx.styled_lines(
        [
            (18, False, ["Annual Review"]),
            (11, True, ["Risk Factors"]),
            (11, False, BODY),
            # Bold text that reads as a sentence, or in a table, is no heading.
            (11, True, ["All amounts are in millions."]),
            (11, True, ["Revenue 1,200 1,100"]),
            (11, False, ["Demand may fall."]),
        ]
    )
    # A bold heading set right above its text (normal line spacing) is split off.
    page += [(72, 450, 11, "Legal Proceedings", True), (72, 437, 11, "There are none.", False)]
    doc = parse_document(fx.build_styled_pdf([page]))
    assert outline(doc) == [
        ("heading", 1, "Annual Review"),
        ("heading", 2, "Risk Factors"),
        ("paragraph", None, "\n".join(BODY)),
        ("paragraph", None, "All amounts are in millions."),
        ("paragraph", None, "Revenue 1,200 1,100"),
        ("paragraph", None, "Demand may fall."),
        ("heading", 2, "Legal Proceedings"),
        ("paragraph", None, "There are none."),
    ]
    assert_invariants(doc)


def test_bold_column_labels_are_not_headings() -> None:
    page = fx.styled_lines([(11, False, BODY)])
    page += [(380, 660, 11, "Three Months Ended", True)]  # right-aligned column label
    page += [(72, 620, 11, "Operating income 36,016 41,488", False)]
    page += [(72, 590, 11, "Segment Results", True)]  # between table rows: a row label
    page += [(72, 560, 11, "Americas 1,000 2,000", False)]
    doc = parse_document(fx.build_styled_pdf([page]))
    assert texts(doc, "heading") == []
    assert "Three Months Ended" in doc.text and "Segment Results" in doc.text


def test_running_headers_are_not_headings() -> None:
    header = fx.styled_lines([(11, True, ["ACME Corp | Report"]), (11, False, BODY)])
    pages = [[*header, (72, 40, 14, f"ACME Corp {n}", False)] for n in range(1, 5)]
    pages[1] += fx.styled_lines([(11, True, ["Outlook"]), (11, False, BODY)], top=500)
    doc = parse_document(fx.build_styled_pdf(pages))
    assert [(b.page, b.level) for b in doc.blocks if b.kind == "heading"] == [(2, 1)]
    assert texts(doc, "heading") == ["Outlook"]
    assert texts(doc).count("ACME Corp | Report") == 4
    assert_invariants(doc)


def test_sec_filing_structure() -> None:
    page = fx.styled_lines(
        [
            (11, False, ["Item 1. Financial Statements 3"]),  # a contents line: page number
            (11, True, ["PART I - FINANCIAL INFORMATION"]),
            (11, True, ["Item 2. Discussion and Analysis"]),
            (11, True, ["Segment Operating Performance"]),
            (11, False, BODY),
            (11, False, ["PART II"]),  # a plain "PART" line standing alone
            (11, False, ["Item 1A. Risk Factors"]),
            (11, False, ["Refer to Part I, Item 2 of this report."]),
        ]
    )
    doc = parse_document(fx.build_styled_pdf([page]))
    assert [(b.level, doc.text[b.start : b.end]) for b in doc.blocks if b.kind == "heading"] == [
        (1, "PART I - FINANCIAL INFORMATION"),
        (2, "Item 2. Discussion and Analysis"),
        (3, "Segment Operating Performance"),
        (1, "PART II"),
        (2, "Item 1A. Risk Factors"),
    ]
    assert_invariants(doc)


def test_another_document_family_supplies_its_own_heading_rules() -> None:
    page = fx.styled_lines(
        [
            (11, False, ["Chapter 3 - Scope"]),
            (11, False, BODY),
            (11, False, ["Section 2. Definitions"]),
            (11, False, BODY),
            (11, False, ["Item 1A. Risk Factors"]),  # a filing's wording, body text here
            (11, False, BODY),
        ]
    )
    data = fx.build_styled_pdf([page])
    handbook = HeadingRules(
        name="handbook",
        sections=((re.compile(r"^Chapter \d+\b"), 1), (re.compile(r"^Section \d+\."), 2)),
        numbered=(),
        max_chars=120,
    )
    limits = fx.limits()
    builder = DocumentBuilder(PDF, max_chars=limits.max_text_chars)
    title = parse_pdf(data, builder, limits, heading_rules=handbook)
    doc = builder.build(title=title, metadata={})
    assert [(b.level, doc.text[b.start : b.end]) for b in doc.blocks if b.kind == "heading"] == [
        (1, "Chapter 3 - Scope"),
        (2, "Section 2. Definitions"),
    ]
    assert_invariants(doc)
    # The default rules are the SEC filing's: only the Item is a heading there.
    assert texts(parse_document(data), "heading") == ["Item 1A. Risk Factors"]


def test_too_many_pages() -> None:
    with pytest.raises(LimitExceededError, match="PDF has 5 pages; at most 3 are allowed"):
        parse_document(fx.many_pages_pdf(5), limits=fx.limits(max_pages=3))


def test_encrypted_pdf() -> None:
    with pytest.raises(EncryptedContentError, match="PDF is password-protected"):
        parse_document(fx.encrypted_pdf())


def test_scanned_pdf_has_no_text() -> None:
    with pytest.raises(EmptyContentError, match=r"no extractable text: no text layer, and no"):
        parse_document(fx.scanned_pdf())


@pytest.mark.parametrize(
    "data",
    [
        fx.sample_pdf()[:40],
        b"%PDF-1.7\n" + fx.random_binary(2000),
        b"%PDF-",
    ],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(CorruptContentError, match="PDF is damaged"):
        parse_document(data)


def test_truncated_pdf_is_repaired_or_rejected_cleanly() -> None:
    # pdfium rebuilds a missing xref table when the objects are intact; either outcome
    # is fine as long as nothing unclassified escapes.
    data = fx.sample_pdf()
    try:
        doc = parse_document(data[: data.rindex(b"xref")])
    except (CorruptContentError, EmptyContentError):
        return
    assert_invariants(doc)


REAL_PDF = fx.CORPUS / "2023 Q1 AAPL.pdf"


@pytest.mark.skipif(
    not REAL_PDF.exists() and not os.environ.get("CI"), reason="sec-10q corpus not available"
)
def test_real_10q_filing() -> None:
    data = REAL_PDF.read_bytes()
    pdf = pdfium.PdfDocument(data)
    try:
        expected_pages = len(pdf)
    finally:
        pdf.close()
    doc = parse_document(data, filename="filing.pdf")
    assert doc.page_count == expected_pages
    with_text = [p for p in doc.pages if doc.text[p.start : p.end].strip()]
    assert len(with_text) >= 0.9 * expected_pages
    assert "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS" in doc.text
    assert "Total net sales 117,154 123,945" in doc.text  # table rows stay on one line
    assert doc.title is None  # the metadata title is an accession number, not a title
    headings = [(b.level, doc.text[b.start : b.end]) for b in doc.blocks if b.kind == "heading"]
    assert (1, "PART I \u2014 FINANCIAL INFORMATION") in headings
    assert (2, "Item 1. Financial Statements") in headings
    assert any(level == 2 and text.startswith("Item 2. ") for level, text in headings)
    assert any(level == 3 and text.startswith("Note 1 ") for level, text in headings)
    # No table rows ("Total net sales 117,154 123,945") or contents lines ("... 21").
    assert not [text for _, text in headings if text.split()[-1].strip("$(),.%").isdigit()]
    assert 30 <= len(headings) <= 120
    assert_invariants(doc)


# --- Line boxes (citation viewer geometry) --------------------------------------------


def line_boxes(doc: ParsedDocument) -> list[tuple[str, TextBox]]:
    """Each box with the text it covers."""
    return [(doc.text[box.start : box.end], box) for box in doc.boxes]


def test_line_boxes_sit_where_the_lines_are_drawn() -> None:
    # (x, y, size, text), y from the page bottom as PDF draws it.
    lines: list[fx.PdfLine] = [
        (72, 720, 11, "Quarterly results improved."),
        (72, 707, 11, "Revenue grew in every segment."),
        (300, 400, 20, "Outlook"),
        (150, 100, 9, "Legal proceedings: none."),
    ]
    doc = parse_document(fx.build_pdf([lines]))
    assert [(p.width, p.height) for p in doc.pages] == [(612.0, 792.0)]
    found = line_boxes(doc)
    assert [text for text, _ in found] == [text for *_, text in lines]
    for (x, y, size, text), (_, box) in zip(lines, found, strict=True):
        assert box.page == 1
        assert abs(box.x0 - x) < 1, (text, box)
        # Top-left origin: the baseline, 792 - y from the top, runs through the box,
        # which is about one font size tall (ascent to descent).
        assert box.y0 < 792 - y < box.y1, (text, box)
        assert 0.8 * size < box.y1 - box.y0 < 1.6 * size, (text, box)
        # Helvetica averages about half an em per character.
        assert 0.35 * size * len(text) < box.x1 - box.x0 < 0.7 * size * len(text), (text, box)
    # Lines drawn lower on the page are further down in top-left coordinates.
    assert [box.y0 for _, box in found] == sorted(box.y0 for _, box in found)


def test_line_boxes_follow_crop_box_and_rotation() -> None:
    pdf = pdfium.PdfDocument(fx.build_pdf([[(72, 700, 11, "Rotated page text.")]]))
    try:
        page = pdf[0]
        page.set_cropbox(36, 36, 576, 756)  # 540 x 720 in user space
        page.set_rotation(90)  # shown as 720 x 540, the page's left edge on top
        page.close()
        buffer = io.BytesIO()
        pdf.save(buffer)
    finally:
        pdf.close()
    doc = parse_document(buffer.getvalue())
    assert [(p.width, p.height) for p in doc.pages] == [(720.0, 540.0)]
    [(text, box)] = line_boxes(doc)
    assert text == "Rotated page text."
    # Unrotated, the text starts 36pt from the crop box's left edge with its baseline
    # 56pt below its top; turned clockwise, it runs downwards from y=36 at x=720-56.
    assert abs(box.y0 - 36) < 1, box
    assert box.x0 < 720 - 56 < box.x1, box
    assert box.y1 - box.y0 > box.x1 - box.x0, "the line runs down the shown page"


def test_a_word_hyphenated_across_lines_gets_a_box_per_line() -> None:
    # pdfium joins "per-" + "formance" into one line of text; the boxes stay two.
    lines: list[fx.PdfLine] = [
        (72, 700, 11, "The company reported strong per-"),
        (72, 687, 11, "formance in every segment."),
    ]
    doc = parse_document(fx.build_pdf([lines]))
    assert doc.text == "The company reported strong performance in every segment."
    found = line_boxes(doc)
    assert [text for text, _ in found] == [
        "The company reported strong per",
        "formance in every segment.",
    ]
    first, second = (box for _, box in found)
    assert first.end == second.start
    assert first.y0 < 792 - 700 < first.y1 and second.y0 < 792 - 687 < second.y1
    assert first.x1 > second.x1, "the first line is the longer one"


def test_soft_hyphen_joins_keep_each_part_in_its_own_box() -> None:
    # Soft hyphens need a font encoding the hand-written PDFs lack: drive the line
    # joining directly, as pdfium would feed it.
    top, bottom = (72.0, 100.0, 200.0, 112.0), (72.0, 113.0, 180.0, 125.0)
    lines = [
        _Line("Sales of soft\x02  ", runs=[(0, 16, top)]),
        _Line("  ware grew.", runs=[(0, 12, bottom)]),
    ]
    [paragraph] = _paragraphs(lines)
    assert paragraph.text == "Sales of software grew."
    boxes = _place_boxes(paragraph.lines, paragraph.text, 100, 3)
    assert [(b.start, b.end, (b.x0, b.y0, b.x1, b.y1)) for b in boxes] == [
        (100, 113, top),  # "Sales of soft"
        (113, 123, bottom),  # "ware grew."
    ]


def test_boxes_survive_the_json_round_trip_compactly() -> None:
    doc = parse_document(fx.sample_pdf())
    assert doc.boxes and doc.schema_version == 2
    payload = json.loads(doc.model_dump_json())
    assert payload["boxes"][0] == [1, 0, 27, *payload["boxes"][0][3:]]
    assert ParsedDocument.model_validate_json(doc.model_dump_json()) == doc
    # Version 1 JSON (before boxes and page sizes) still reads.
    old = {k: v for k, v in payload.items() if k != "boxes"}
    old["schema_version"] = 1
    old["pages"] = [{k: p[k] for k in ("number", "start", "end")} for p in payload["pages"]]
    legacy = ParsedDocument.model_validate(old)
    assert legacy.boxes == [] and legacy.pages[0].width is None


@pytest.mark.skipif(
    not REAL_PDF.exists() and not os.environ.get("CI"), reason="sec-10q corpus not available"
)
def test_real_filing_boxes_lie_on_their_pages() -> None:
    doc = parse_document(REAL_PDF.read_bytes(), filename="filing.pdf")
    pages = {page.number: page for page in doc.pages}
    assert len(doc.boxes) > 1000
    previous_end = 0
    covered = bytearray(len(doc.text))
    for text, box in line_boxes(doc):
        page = pages[box.page]
        assert page.width and page.height
        assert 0 <= box.x0 < box.x1 <= page.width and 0 <= box.y0 < box.y1 <= page.height, box
        assert page.start <= box.start < box.end <= page.end, (box, page)
        assert box.start >= previous_end, "boxes are in text order and do not overlap"
        previous_end = box.end
        assert text == text.strip() and "\n" not in text, text
        assert box.y1 - box.y0 < 40, "a box is one line high"
        covered[box.start : box.end] = b"\x01" * (box.end - box.start)
    letters = [i for i, ch in enumerate(doc.text) if not ch.isspace()]
    assert sum(covered[i] for i in letters) == len(letters), "every character is boxed"
    table_row = next(b for t, b in line_boxes(doc) if t.startswith("Total net sales"))
    assert table_row.x1 - table_row.x0 > 0.5 * (pages[table_row.page].width or 0)


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("D:20230728100829+00'00'", "2023-07-28T10:08:29+00:00"),
        ("D:20220729060321-04'00'", "2022-07-29T06:03:21-04:00"),
        ("D:20231024201459Z", "2023-10-24T20:14:59+00:00"),
        ("20231024", "2023-10-24T00:00:00+00:00"),
        ("D:2023", "2023-01-01T00:00:00+00:00"),
        ("D:20231399", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_pdf_dates_become_iso_8601(value: str, iso: str | None) -> None:
    from shared.parsing.pdf import parse_pdf_date

    assert parse_pdf_date(value) == iso


@pytest.mark.skipif(
    not REAL_PDF.exists() and not os.environ.get("CI"), reason="sec-10q corpus not available"
)
def test_a_pdfs_creation_date_is_kept() -> None:
    parsed = parse_document(REAL_PDF.read_bytes(), filename="aapl.pdf")
    assert parsed.metadata["created"] == "2023-02-03T06:02:21-05:00"
