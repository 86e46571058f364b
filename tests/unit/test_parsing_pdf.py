"""PDF parsing: pages, paragraphs, limits, bad input and a real 10-Q filing."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest

from shared.errors import (
    CorruptContentError,
    EmptyContentError,
    EncryptedContentError,
    LimitExceededError,
)
from shared.parsing import PDF, parse_document
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


def test_too_many_pages() -> None:
    with pytest.raises(LimitExceededError, match="PDF has 5 pages; at most 3 are allowed"):
        parse_document(fx.many_pages_pdf(5), limits=fx.limits(max_pages=3))


def test_encrypted_pdf() -> None:
    with pytest.raises(EncryptedContentError, match="PDF is password-protected"):
        parse_document(fx.encrypted_pdf())


def test_scanned_pdf_has_no_text() -> None:
    with pytest.raises(EmptyContentError, match=r"no extractable text.*OCR is not supported"):
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


@pytest.mark.skipif(not REAL_PDF.exists(), reason="sec-10q corpus not available")
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
    assert_invariants(doc)
