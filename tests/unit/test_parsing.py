"""Detection, limits, text/Markdown/HTML parsing and the block invariants."""

from __future__ import annotations

import random

import pytest

from shared.errors import (
    CorruptContentError,
    EmptyContentError,
    EncryptedContentError,
    LimitExceededError,
    PermanentError,
    UnsupportedContentError,
)
from shared.parsing import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    detect_content_type,
    parse_document,
)
from tests.unit import parsing_fixtures as fx
from tests.unit.parsing_fixtures import assert_invariants, texts

# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (fx.sample_pdf(), PDF),
        (b"\n  " + fx.sample_pdf(), PDF),
        (fx.sample_docx(), DOCX),
        (fx.html_page(), HTML),
        (b"<div><p>Hello</p><span>x</span></div>", HTML),
        (b"<p>Hello</p>", HTML),
        (b"<3 this tool\n\nreally", PLAIN),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"></html>', HTML),
        (fx.markdown_doc().encode(), MARKDOWN),
        (b"Intro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", MARKDOWN),
        (b"Just some words.\n\nAnother paragraph.\n", PLAIN),
        (b"BMW reported record sales.", PLAIN),
        ("Caf\u00e9 cr\u00e8me".encode("utf-16"), PLAIN),
        ("\ufeff# Heading\n\ntext".encode(), MARKDOWN),
    ],
)
def test_detects_type_from_bytes(data: bytes, expected: str) -> None:
    assert detect_content_type(data) == expected


def test_detection_ignores_misleading_filenames() -> None:
    assert parse_document(fx.sample_pdf(), filename="notes.txt").content_type == PDF
    assert parse_document(fx.sample_docx(), filename="page.html").content_type == DOCX
    assert parse_document(fx.html_page(), filename="report.pdf").content_type == HTML
    with pytest.raises(UnsupportedContentError):
        parse_document(fx.random_binary(), filename="report.pdf")


def test_filename_breaks_markdown_plain_tie_only() -> None:
    listy = b"Shopping:\n- eggs\n- milk\n"
    assert parse_document(listy).content_type == MARKDOWN
    assert parse_document(listy, filename="list.txt").content_type == PLAIN
    prose = b"Plain prose only."
    assert parse_document(prose).content_type == PLAIN
    assert parse_document(prose, filename="README.md").content_type == MARKDOWN
    # Strong Markdown structure wins over a .txt name.
    assert parse_document(b"# Title\n\nBody", filename="x.txt").content_type == MARKDOWN


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (fx.random_binary(), "binary data"),
        (b"GIF89a" + bytes(100), "GIF image"),
        (b"BM" + bytes(100), "BMP image"),
        (b"\x1f\x8b\x08\x00" + bytes(100), "gzip archive"),
        (b"{\\rtf1\\ansi hello}", "RTF document"),
        (fx.plain_zip({"a.txt": b"hello"}), "ZIP archive"),
        (fx.plain_zip({"xl/workbook.xml": b"<x/>"}), "Excel workbook"),
        (fx.plain_zip({"ppt/presentation.xml": b"<x/>"}), "PowerPoint"),
        (fx.ole_file("WordDocument"), "legacy Word document (.doc)"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG image"),
        (b'<?xml version="1.0"?><feed></feed>', "XML document"),
    ],
)
def test_unsupported_types_name_what_they_look_like(data: bytes, fragment: str) -> None:
    with pytest.raises(UnsupportedContentError) as info:
        parse_document(data)
    assert fragment in str(info.value)
    assert isinstance(info.value, PermanentError)


def test_encrypted_office_document() -> None:
    with pytest.raises(EncryptedContentError, match="password-protected"):
        parse_document(fx.ole_file("EncryptedPackage"))


def test_corrupt_zip_container() -> None:
    truncated = fx.sample_docx()[:-200]  # the central directory is gone
    with pytest.raises(CorruptContentError, match="damaged or truncated"):
        parse_document(truncated)


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_input(data: bytes) -> None:
    with pytest.raises(EmptyContentError):
        parse_document(data)


def test_max_bytes_checked_first() -> None:
    # Random binary would be unsupported; the size limit must win regardless.
    with pytest.raises(LimitExceededError, match="limit is"):
        parse_document(fx.random_binary(2048), limits=fx.limits(max_bytes=1024))


@pytest.mark.parametrize(
    "data",
    [b"word " * 500, fx.html_page(), fx.markdown_doc().encode(), fx.sample_pdf()],
)
def test_max_text_chars(data: bytes) -> None:
    with pytest.raises(LimitExceededError, match="characters"):
        parse_document(data, limits=fx.limits(max_text_chars=50))


# --------------------------------------------------------------------------- plain text


def test_plain_text_paragraphs() -> None:
    doc = parse_document(b"First line\nsecond line\n\n\n  \nSecond para.  \r\n\r\nThird")
    assert doc.content_type == PLAIN
    assert texts(doc) == ["First line\nsecond line", "Second para.", "Third"]
    assert {b.kind for b in doc.blocks} == {"paragraph"}
    assert doc.pages == [] and doc.title is None
    assert_invariants(doc)


def test_utf16_text_is_decoded() -> None:
    doc = parse_document("Gr\u00fc\u00dfe aus K\u00f6ln\n\nZweiter Absatz".encode("utf-16"))
    assert texts(doc) == ["Gr\u00fc\u00dfe aus K\u00f6ln", "Zweiter Absatz"]
    assert doc.metadata["encoding"] == "utf-16"
    assert_invariants(doc)


def test_legacy_windows_text_is_decoded() -> None:
    doc = parse_document("Caf\u00e9 \u2013 na\u00efve".encode("cp1252"))
    assert doc.text == "Caf\u00e9 \u2013 na\u00efve"
    assert doc.metadata["encoding"] == "cp1252"


def test_slightly_damaged_utf8_is_kept() -> None:
    data = "Stra\u00dfe und Br\u00fccke".encode() + b"\xff" + " \u2014 Ende".encode()
    doc = parse_document(data)
    assert doc.text == "Stra\u00dfe und Br\u00fccke\ufffd \u2014 Ende"
    assert doc.metadata["encoding"] == "utf-8"


def test_control_characters_are_removed() -> None:
    doc = parse_document(b"Hello\x07 wor\x1bld\x7f")
    assert doc.text == "Hello world"


# --------------------------------------------------------------------------- markdown


def test_markdown_structure() -> None:
    doc = parse_document(fx.markdown_doc().encode(), filename="handbook.md")
    assert doc.content_type == MARKDOWN
    assert doc.title == "Team Handbook"  # front matter wins over the first H1
    kinds = [(b.kind, b.level) for b in doc.blocks]
    assert kinds == [
        ("heading", 1),
        ("paragraph", None),
        ("heading", 2),
        ("list", None),
        ("table", None),
        ("code", None),
        ("heading", 2),
        ("heading", 6),
        ("paragraph", None),
    ]
    assert texts(doc, "heading") == ["Handbook", "Tools", "Setext Heading", "Tiny heading"]
    assert "title: Team Handbook" not in doc.text
    (code,) = texts(doc, "code")
    assert code.startswith("```python\n") and code.endswith("```")
    assert '    return "# not a heading"' in code and "\n\n" in code  # kept whole
    (table,) = texts(doc, "table")
    assert table.splitlines()[-1] == "| Wiki | docs  |"
    (bullets,) = texts(doc, "list")
    assert bullets == "- Laptop\n- Editor\n  - Vim or VS Code\n- Coffee"
    assert_invariants(doc)


def test_markdown_edge_cases() -> None:
    source = (
        "#NotAHeading because no space\n\n"
        "# Closed heading ##\n"
        "Para right after heading.\n"
        "1. one\n2. two\n\n"
        "```\nunclosed fence\n\n# inside"
    )
    doc = parse_document(source.encode())
    assert texts(doc) == [
        "#NotAHeading because no space",
        "Closed heading",
        "Para right after heading.",
        "1. one\n2. two",
        "```\nunclosed fence\n\n# inside\n```",
    ]
    assert doc.title == "Closed heading"
    assert_invariants(doc)


# --------------------------------------------------------------------------- html


def test_html_structure_and_noise_removal() -> None:
    doc = parse_document(fx.html_page())
    assert doc.content_type == HTML
    assert doc.title == "Pricing & Plans"
    for noise in ("SCRIPTNOISE", "NAVNOISE", "HEADERNOISE", "FOOTERNOISE", "FORMNOISE"):
        assert noise not in doc.text
    assert "ASIDENOISE" not in doc.text and "NOSCRIPTNOISE" not in doc.text
    assert "color: red" not in doc.text
    assert [(b.kind, b.level) for b in doc.blocks if b.kind == "heading"] == [
        ("heading", 1),
        ("heading", 2),
    ]
    paragraphs = texts(doc, "paragraph")
    # Inline elements join with the spacing of the source; <br> keeps a line break.
    assert paragraphs[0] == "Our plans are simple and transparent.\nNo hidden fees."
    assert paragraphs[1] == "Unbelievable value, really."
    assert "Loose inline text in a div." in paragraphs
    assert "Best value in town." in paragraphs
    lists = texts(doc, "list")
    assert lists == ["- Free tier\n- Pro tier\n  - Monthly\n  - Yearly", "3. Third\n4. Fourth"]
    (table,) = texts(doc, "table")
    assert table == "| Plan | Price |\n| --- | --- |\n| Free | $0 |\n| A\\|B | $10 |"
    (code,) = texts(doc, "code")
    assert code == "```\ndef price():\n    return 10\n```"
    assert_invariants(doc)


def test_html_without_main_uses_body_and_keeps_article_header() -> None:
    page = b"""<html><body><header>SITE BANNER</header>
    <article><header><h1>Launch day</h1><p>By Ann</p></header>
    <p>We shipped<br/>it.</p><footer>Tags: news</footer></article>
    <div><p>Related: other posts</p></div></body></html>"""
    doc = parse_document(page)
    assert "SITE BANNER" not in doc.text
    assert texts(doc, "heading") == ["Launch day"]
    assert doc.title == "Launch day"  # no <title>: the first <h1>
    assert "We shipped\nit." in texts(doc, "paragraph")
    assert_invariants(doc)


def test_html_layout_table_and_deep_nesting() -> None:
    layout = b"<html><body><table><tr><td><p>Cell one.</p><p>Cell two.</p></td></tr></table>"
    deep = b"<div>" * 5000 + b"deep text" + b"</div>" * 5000
    doc = parse_document(layout + deep + b"</body></html>")
    assert texts(doc) == ["Cell one.", "Cell two.", "deep text"]
    assert_invariants(doc)


def test_html_whole_page_form_is_kept() -> None:
    page = b"<html><body><form><h1>Report</h1><p>All the content lives here.</p></form></body>"
    doc = parse_document(page)
    assert texts(doc) == ["Report", "All the content lives here."]


def test_html_meta_charset() -> None:
    page = '<html><head><meta charset="koi8-r"></head><body><p>Привет</p></body></html>'
    doc = parse_document(page.encode("koi8-r"))
    assert texts(doc) == ["Привет"]


def test_html_only_chrome_is_empty() -> None:
    with pytest.raises(EmptyContentError, match="HTML document contains no text"):
        parse_document(b"<html><body><nav>Menu</nav><script>x()</script></body></html>")


# --------------------------------------------------------------------------- robustness


def _mutations(seed: bytes, count: int, rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(count):
        data = bytearray(seed)
        mode = rng.choice(["flip", "truncate", "splice"])
        if mode == "flip":
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif mode == "truncate":
            data = data[: rng.randrange(1, len(data))]
        else:
            at = rng.randrange(len(data))
            data[at : at + rng.randint(1, 300)] = rng.randbytes(rng.randint(0, 300))
        out.append(bytes(data))
    return out


@pytest.mark.parametrize(
    "build", [fx.sample_pdf, fx.sample_docx, fx.html_page, lambda: fx.markdown_doc().encode()]
)
def test_damaged_input_only_raises_permanent_errors(build) -> None:
    rng = random.Random(20240601)
    for data in _mutations(build(), 60, rng):
        try:
            doc = parse_document(data)
        except PermanentError as exc:
            assert str(exc), type(exc)
        else:
            assert_invariants(doc)
