"""DOCX parsing: document order, headings, lists, tables, zip bombs and bad packages."""

from __future__ import annotations

import pytest

from shared.errors import (
    CorruptContentError,
    EmptyContentError,
    LimitExceededError,
    UnsupportedContentError,
)
from shared.parsing import DOCX, parse_document
from tests.unit import parsing_fixtures as fx
from tests.unit.parsing_fixtures import assert_invariants, texts


def test_structure_in_document_order() -> None:
    doc = parse_document(fx.sample_docx(), filename="plan.txt")
    assert doc.content_type == DOCX
    assert doc.title == "Annual Plan"
    assert [(b.kind, b.level) for b in doc.blocks] == [
        ("heading", 1),
        ("heading", 1),
        ("paragraph", None),
        ("list", None),
        ("heading", 2),
        ("table", None),
        ("paragraph", None),
        ("list", None),
        ("heading", 6),
        ("paragraph", None),
    ]
    assert texts(doc, "list") == [
        "- Grow revenue\n- Cut churn\n  - Hire | train",
        "- First step\n- Second step",
    ]
    (table,) = texts(doc, "table")
    assert (
        table == "| Team | Q1 | Q2 |\n| --- | --- | --- |\n| Sales | 10 | 12 |\n| R\\|D | 5 | 6 |"
    )
    assert doc.pages == []
    assert_invariants(doc)


def test_merged_cells_keep_columns_aligned() -> None:
    doc = parse_document(fx.merged_table_docx())
    assert texts(doc) == ["| Region |  | Total |\n| --- | --- | --- |\n| EU | US | 30 |"]
    assert_invariants(doc)


def test_style_based_on_heading_is_a_heading() -> None:
    doc = parse_document(fx.custom_heading_docx())
    assert [(b.kind, b.level) for b in doc.blocks] == [("heading", 2), ("paragraph", None)]


def test_tracked_insertions_and_content_controls_are_read() -> None:
    doc = parse_document(fx.tracked_changes_docx())
    assert texts(doc) == ["Kept inserted boxed"]


def test_zip_bomb_ratio() -> None:
    with pytest.raises(LimitExceededError, match="zip bomb") as info:
        parse_document(fx.zip_bomb_docx())
    assert "word/media/zeros.bin" in str(info.value)


def test_zip_bomb_total_size() -> None:
    data = fx.with_extra_member(fx.sample_docx(), "word/media/blob.bin", fx.random_binary(300_000))
    limits = fx.limits(max_unzipped_bytes=200_000)
    with pytest.raises(LimitExceededError, match=r"expand to .* when unzipped"):
        parse_document(data, limits=limits)


def test_small_highly_compressible_parts_are_fine() -> None:
    # 512 KiB of spaces compresses ~1000x but is below the ratio threshold size.
    data = fx.with_extra_member(fx.sample_docx(), "word/media/pad.bin", b" " * 512 * 1024)
    assert parse_document(data).content_type == DOCX


@pytest.mark.parametrize("build", [fx.docx_missing_part, fx.docx_bad_xml])
def test_damaged_package(build) -> None:
    with pytest.raises(CorruptContentError, match="DOCX file is damaged"):
        parse_document(build())


def test_macro_enabled_document() -> None:
    with pytest.raises(UnsupportedContentError, match=r"\.docm"):
        parse_document(fx.macro_docx())


def test_empty_docx() -> None:
    with pytest.raises(EmptyContentError, match="DOCX document contains no text"):
        parse_document(fx.empty_docx())


def test_the_documents_own_date_is_kept() -> None:
    import datetime as dt
    import io

    import docx

    document = docx.Document()
    document.core_properties.created = dt.datetime(2023, 5, 4, 9, 30)
    document.add_paragraph("Quarterly notes.")
    buffer = io.BytesIO()
    document.save(buffer)
    parsed = parse_document(buffer.getvalue(), filename="notes.docx")
    assert parsed.metadata["created"].startswith("2023-05-04T09:30:00")
