"""Build good and bad documents for the parsing tests, programmatically, at test time.

PDFs are written by hand (a few objects and a correct xref table) so each test controls
exactly where text sits on the page; DOCX files come from python-docx itself.
"""

from __future__ import annotations

import io
import os
import zipfile

import docx
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from shared.config import ParseLimits, get_parse_limits
from shared.models import ParsedDocument
from tests.conftest import CORPUS as CORPUS  # the corpus beside the checkout

# A line of PDF text: (x, y, font size, text). y is in points from the page bottom.
PdfLine = tuple[float, float, float, str]


def limits(**overrides: float) -> ParseLimits:
    """The instance's parse limits with some values overridden."""
    return get_parse_limits().model_copy(update=overrides)


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _content_stream(lines: list[PdfLine], *, draw_box: bool = False) -> bytes:
    ops: list[str] = []
    if draw_box:
        ops.append("0.5 g 72 72 200 200 re f")  # a filled rectangle: an "image" page
    for x, y, size, text in lines:
        ops.append(f"BT /F1 {size} Tf {x} {y} Td {_pdf_string(text)} Tj ET")
    return "\n".join(ops).encode("latin-1")


def build_pdf(
    pages: list[list[PdfLine]],
    *,
    encrypt: bool = False,
    title: str | None = None,
    draw_box: bool = False,
) -> bytes:
    """Write a minimal, valid PDF with Helvetica text lines on each page.

    Args:
        pages: The lines of each page.
        encrypt: Add a standard-security /Encrypt dictionary whose user password is not
            empty, so readers must ask for a password.
        title: A /Title for the document information dictionary.
        draw_box: Draw a filled rectangle on every page (a text-less "scan").

    Returns:
        The PDF bytes.
    """
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the page tree number is known
    pages_id = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids: list[int] = []
    for lines in pages:
        stream = _content_stream(lines, draw_box=draw_box)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(
            add(
                (
                    f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
                ).encode()
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode()
    kid_refs = " ".join(f"{kid} 0 R" for kid in kids)
    objects[pages_id - 1] = f"<< /Type /Pages /Kids [{kid_refs}] /Count {len(kids)} >>".encode()
    info = add(f"<< /Title {_pdf_string(title)} >>".encode()) if title else None
    encrypt_id = None
    if encrypt:
        # RC4 40-bit standard handler with random O/U strings: no password matches them.
        o_value, u_value = os.urandom(32).hex(), os.urandom(32).hex()
        encrypt_id = add(
            f"<< /Filter /Standard /V 1 /R 2 /O <{o_value}> /U <{u_value}> /P -44 >>".encode()
        )

    trailer = f"/Root {catalog} 0 R"
    if info:
        trailer += f" /Info {info} 0 R"
    if encrypt_id:
        file_id = os.urandom(16).hex()
        trailer += f" /Encrypt {encrypt_id} 0 R /ID [<{file_id}> <{file_id}>]"
    return _assemble_pdf(objects, trailer)


def _assemble_pdf(objects: list[bytes], trailer: str) -> bytes:
    """Serialise numbered objects with a correct xref table; ``trailer`` adds entries."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} {trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def paragraph_lines(paragraphs: list[list[str]], *, top: float = 720) -> list[PdfLine]:
    """Lay out paragraphs of 11pt lines: 13pt leading, 26pt between paragraphs.

    Args:
        paragraphs: Each paragraph's lines.
        top: The y of the first line.

    Returns:
        Positioned lines for :func:`build_pdf`.
    """
    lines: list[PdfLine] = []
    y = top
    for paragraph in paragraphs:
        for text in paragraph:
            lines.append((72, y, 11, text))
            y -= 13
        y -= 13
    return lines


def sample_pdf() -> bytes:
    """A three-page PDF: two paragraphs, one paragraph, then two paragraphs."""
    return build_pdf(
        [
            paragraph_lines(
                [
                    ["Quarterly results improved.", "Revenue grew in every segment."],
                    ["Operating costs were flat."],
                ]
            ),
            paragraph_lines([["Page two has one paragraph only."]]),
            paragraph_lines([["Risk factors are unchanged."], ["Legal proceedings: none."]]),
        ],
        title="Sample Quarterly Report",
    )


def scanned_pdf() -> bytes:
    """A two-page PDF with graphics but no text layer."""
    return build_pdf([[], []], draw_box=True)


def encrypted_pdf() -> bytes:
    """A PDF whose standard security handler needs an unknown user password."""
    return build_pdf([paragraph_lines([["Secret"]])], encrypt=True)


def many_pages_pdf(count: int) -> bytes:
    """A PDF with ``count`` one-line pages."""
    return build_pdf([paragraph_lines([[f"Page {n}"]]) for n in range(1, count + 1)])


def sample_docx() -> bytes:
    """A DOCX with a title, headings, a bullet list, a numbered list, a table, and
    paragraphs between them, so document order can be checked."""
    document = docx.Document()
    document.core_properties.title = ""
    document.add_paragraph("Annual Plan", style="Title")
    document.add_heading("Goals", level=1)
    document.add_paragraph("We focus on three goals this year.")
    document.add_paragraph("Grow revenue", style="List Bullet")
    document.add_paragraph("Cut churn", style="List Bullet")
    document.add_paragraph("Hire | train", style="List Bullet 2")
    document.add_heading("Budget", level=2)
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([["Team", "Q1", "Q2"], ["Sales", "10", "12"], ["R|D", "5", "6"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("Numbers are in millions.")
    document.add_paragraph("First step", style="List Number")
    document.add_paragraph("Second step", style="List Number")
    document.add_heading("Deep heading", level=6)
    document.add_paragraph("Closing words.")
    return _save(document)


def merged_table_docx() -> bytes:
    """A DOCX whose only table has a horizontally merged header cell."""
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 1))
    merged.text = "Region"
    table.cell(0, 2).text = "Total"
    for c, value in enumerate(["EU", "US", "30"]):
        table.cell(1, c).text = value
    return _save(document)


def custom_heading_docx() -> bytes:
    """A DOCX with a custom paragraph style based on Heading 2."""
    document = docx.Document()
    style = document.styles.add_style("Fancy Section", WD_STYLE_TYPE.PARAGRAPH)
    style.base_style = document.styles["Heading 2"]
    document.add_paragraph("Custom section", style="Fancy Section")
    document.add_paragraph("Body text.")
    return _save(document)


def tracked_changes_docx() -> bytes:
    """A DOCX with a tracked insertion, a tracked deletion and an inline content control."""
    document = docx.Document()
    paragraph = document.add_paragraph("Kept ")
    for wrapper_tag, text in (("w:ins", "inserted "), ("w:del", "deleted "), ("w:sdt", "boxed")):
        wrapper = OxmlElement(wrapper_tag)
        holder = wrapper
        if wrapper_tag == "w:sdt":
            holder = OxmlElement("w:sdtContent")
            wrapper.append(holder)
        run = OxmlElement("w:r")
        text_element = OxmlElement("w:delText" if wrapper_tag == "w:del" else "w:t")
        text_element.text = text
        text_element.set(qn("xml:space"), "preserve")
        run.append(text_element)
        holder.append(run)
        paragraph._p.append(wrapper)
    return _save(document)


def empty_docx() -> bytes:
    """A valid DOCX with only empty paragraphs."""
    document = docx.Document()
    document.add_paragraph("")
    document.add_paragraph("   ")
    return _save(document)


def _save(document: object) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def with_extra_member(docx_bytes: bytes, name: str, payload: bytes) -> bytes:
    """Copy a DOCX, adding one extra (deflated) member.

    Args:
        docx_bytes: A valid DOCX.
        name: The member's name.
        payload: Its uncompressed content.

    Returns:
        The new DOCX bytes.
    """
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx_bytes)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        target.writestr(name, payload)
    return out.getvalue()


def zip_bomb_docx(megabytes: int = 4) -> bytes:
    """A DOCX carrying a member of zeros that compresses about a thousandfold."""
    return with_extra_member(sample_docx(), "word/media/zeros.bin", bytes(megabytes * 2**20))


def macro_docx() -> bytes:
    """A DOCX relabelled as a macro-enabled document (.docm) in [Content_Types].xml."""
    source = sample_docx()
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(source)) as archive,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in archive.infolist():
            data = archive.read(item.filename)
            if item.filename == "[Content_Types].xml":
                data = data.replace(
                    b"wordprocessingml.document.main+xml", b"ms-word.document.macroEnabled.main+xml"
                )
            target.writestr(item, data)
    return out.getvalue()


def docx_missing_part() -> bytes:
    """A ZIP that has word/document.xml but no [Content_Types].xml or relationships."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


def docx_bad_xml() -> bytes:
    """A DOCX whose main document part is not well-formed XML."""
    source = sample_docx()
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(source)) as archive,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in archive.infolist():
            data = archive.read(item.filename)
            if item.filename == "word/document.xml":
                data = data[: len(data) // 2]
            target.writestr(item, data)
    return out.getvalue()


def plain_zip(members: dict[str, bytes]) -> bytes:
    """A ZIP archive with the given members."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def ole_file(stream_name: str) -> bytes:
    """A stand-in compound file: the CFB signature plus a UTF-16LE directory name.

    Only the parts detection looks at are real; enough to check the classification.
    """
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    return header + stream_name.encode("utf-16-le") + bytes(64)


def random_binary(size: int = 4096) -> bytes:
    """Random bytes (with NULs), reproducible."""
    return bytes((n * 7919 + 13) % 256 for n in range(size))


def html_page() -> bytes:
    """A page with chrome (nav, header, footer, scripts, a search form) around an article."""
    return b"""<!DOCTYPE html>
<html><head><title>  Pricing &amp; Plans </title>
<style>body { color: red }</style><script>var tracking = "SCRIPTNOISE";</script></head>
<body>
<header><a href="/">HEADERNOISE</a></header>
<nav><ul><li>NAVNOISE Home</li><li>About</li></ul></nav>
<form><input name="q"><button>FORMNOISE</button>Search here</form>
<main>
  <h1>Pricing</h1>
  <p>Our plans are <b>simple</b> and <a href="#">transparent</a>.<br>No hidden fees.</p>
  <p>Un<em>believ</em>able value, really.</p>
  <h2>Tiers</h2>
  <ul><li>Free tier</li><li>Pro tier<ul><li>Monthly</li><li>Yearly</li></ul></li></ul>
  <ol start="3"><li>Third</li><li>Fourth</li></ol>
  <table>
    <thead><tr><th>Plan</th><th>Price</th></tr></thead>
    <tbody><tr><td>Free</td><td>$0</td></tr><tr><td>A|B</td><td>$10</td></tr></tbody>
  </table>
  <pre>def price():
    return 10</pre>
  <blockquote>Best value in town.</blockquote>
  <div>Loose <span>inline</span> text in a div.</div>
  <aside>ASIDENOISE</aside>
  <noscript>NOSCRIPTNOISE</noscript>
</main>
<footer>FOOTERNOISE</footer>
</body></html>"""


def markdown_doc() -> str:
    """Markdown with front matter, headings, a list, a table, fenced code, a setext heading."""
    return """---
title: Team Handbook
author: ops
---

# Handbook

Welcome to the team.
This line continues the paragraph.

## Tools

- Laptop
- Editor
  - Vim or VS Code
- Coffee

| Tool | Owner |
|------|-------|
| CI   | ops   |
| Wiki | docs  |

```python
def hello():

    return "# not a heading"
```

Setext Heading
--------------

###### Tiny heading

Final paragraph.
"""


def assert_invariants(doc: ParsedDocument) -> None:
    """The block/page contract every parser must honour."""
    assert doc.text == doc.text.strip()
    previous_end = 0
    for index, block in enumerate(doc.blocks):
        piece = doc.text[block.start : block.end]
        assert piece, block
        assert piece == piece.strip(), block
        assert block.start >= previous_end, "blocks overlap or are out of order"
        gap = doc.text[previous_end : block.start]
        assert not gap.strip(), f"non-separator text between blocks: {gap!r}"
        if index:
            assert gap == "\n\n"
        if block.kind == "heading":
            assert block.level is not None and 1 <= block.level <= 6
            assert "\n" not in piece
        else:
            assert block.level is None
        previous_end = block.end
    assert previous_end == len(doc.text)
    if doc.pages:
        numbers = [page.number for page in doc.pages]
        assert numbers == list(range(1, len(numbers) + 1))
        spans = {page.number: page for page in doc.pages}
        for block in doc.blocks:
            assert block.page is not None
            span = spans[block.page]
            assert span.start <= block.start and block.end <= span.end
        for first, second in zip(doc.pages, doc.pages[1:], strict=False):
            assert first.end <= second.start
    else:
        assert all(block.page is None for block in doc.blocks)


def texts(doc: ParsedDocument, kind: str | None = None) -> list[str]:
    return [doc.text[b.start : b.end] for b in doc.blocks if kind is None or b.kind == kind]


# A line of PDF text with a font weight: (x, y, font size, text, bold).
StyledPdfLine = tuple[float, float, float, str, bool]


def build_styled_pdf(pages: list[list[StyledPdfLine]]) -> bytes:
    """Write a minimal, valid PDF whose lines are in Helvetica or Helvetica-Bold.

    Args:
        pages: The lines of each page.

    Returns:
        The PDF bytes.
    """
    objects: list[bytes] = [b"", b""]  # catalog and page tree, filled in below
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>")
    kids: list[int] = []
    for lines in pages:
        ops = [
            f"BT /{'F2' if bold else 'F1'} {size} Tf {x} {y} Td {_pdf_string(text)} Tj ET"
            for x, y, size, text, bold in lines
        ]
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                f"<< /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {len(objects)} 0 R >>"
            ).encode()
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kid_refs = " ".join(f"{kid} 0 R" for kid in kids)
    objects[1] = f"<< /Type /Pages /Kids [{kid_refs}] /Count {len(kids)} >>".encode()
    return _assemble_pdf(objects, "/Root 1 0 R")


def styled_lines(
    blocks: list[tuple[float, bool, list[str]]], *, top: float = 720, gap: float = 20
) -> list[StyledPdfLine]:
    """Lay out blocks of lines at x=72: each block is (font size, bold, lines).

    Lines sit 1.2 font sizes apart; ``gap`` extra points separate blocks (the default
    is a paragraph break whatever the page's usual line spacing).

    Args:
        blocks: The blocks, top to bottom.
        top: The y of the first line.
        gap: Extra space between blocks.

    Returns:
        Positioned lines for :func:`build_styled_pdf`.
    """
    lines: list[StyledPdfLine] = []
    y = top
    for size, bold, texts_ in blocks:
        for text in texts_:
            lines.append((72, y, size, text, bold))
            y -= round(size * 1.2)
        y -= gap
    return lines
