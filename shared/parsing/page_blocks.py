"""Pages of positioned paragraphs into the builder: blocks, page spans and line boxes.

The last step of every paged parse (PDF text layers and OCR alike): each page's
headings and paragraphs become blocks on their page, and each line's boxes get
offsets into the document's text (:func:`~shared.parsing.pdf_model._place_boxes`).
"""

from __future__ import annotations

from shared.parsing.builder import DocumentBuilder
from shared.parsing.pdf_model import _Page, _place_boxes


def add_pages(builder: DocumentBuilder, pages: list[_Page]) -> None:
    """Add each page's headings and paragraphs to ``builder``, with their line boxes.

    Args:
        builder: Receives the blocks, page spans (with the pages' sizes) and boxes.
        pages: The pages in order; page numbers count from 1.
    """
    for number, page in enumerate(pages, start=1):
        sized = page.width > 0 and page.height > 0
        builder.begin_page(
            number,
            width=round(page.width, 1) if sized else None,
            height=round(page.height, 1) if sized else None,
        )
        for paragraph in page.paragraphs:
            if paragraph.level is None:
                text = paragraph.text
                block = builder.add("paragraph", text)
            else:
                # The builder puts a heading on one line; so does this copy of its text.
                text = " ".join(paragraph.text.split())
                block = builder.add("heading", paragraph.text, level=paragraph.level)
            if block is not None and block.end - block.start == len(text):
                builder.boxes.extend(_place_boxes(paragraph.lines, text, block.start, number))
        builder.end_page()
