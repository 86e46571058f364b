"""Citation viewer data on the local stack: PDF pages and line boxes, text spans, scope."""

from __future__ import annotations

from typing import Any

from scripts.localstack.stack import LocalStack
from shared.answering.viewer import citation_viewer
from shared.pipeline.steps import chunk_version, embed_batch, index_version, parse_version
from shared.store.scope import Scope
from tests.support.api import Api
from tests.support.pipeline import TEXT_V1, TEXT_V2, Recorder, store_version
from tests.unit import parsing_fixtures as fx

WORKSPACE = "default"  # the local stack's built-in principal's workspace
# Two pages of 11pt Helvetica lines at x=72, drawn from y=720 down (PDF y grows upwards).
PAGE_ONE = [
    ["Quarterly results improved across the business.", "Revenue grew in every segment."],
    ["Operating costs were flat compared with last year."],
]
PAGE_TWO = [["Risk factors are unchanged from the annual report."], ["Legal proceedings: none."]]
MARKDOWN = (
    "# Notes\n\nThe board met twice this quarter.\n\n## Dividends\n\nA dividend was declared."
)


def _chunks(stack: LocalStack, document_id: str) -> list[tuple[Any, ...]]:
    """(id, version_id, text, metadata) of the document's chunk rows, in order."""
    return stack.database.run(
        "SELECT id, version_id::text, text, metadata FROM chunks"
        " WHERE document_id = CAST(:d AS uuid) ORDER BY version_id, ordinal",
        d=document_id,
    )


def test_pdf_chunks_get_pages_and_boxes_text_chunks_their_span(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("viewer")
    pdf_bytes = fx.build_pdf([fx.paragraph_lines(PAGE_ONE), fx.paragraph_lines(PAGE_TWO)])
    pdf_doc = api.ingest(kb["id"], "report.pdf", pdf_bytes)
    md_doc = api.ingest(kb["id"], "notes.md", MARKDOWN.encode())
    assert pdf_doc["status"] == md_doc["status"] == "ready", (pdf_doc, md_doc)
    db = clean_stack.database

    [(chunk_id, _, text, metadata)] = _chunks(clean_stack, pdf_doc["id"])
    assert set(metadata) == {"boxes", "page_sizes"}, "geometry is stored with the chunk"
    mine = Scope(kb_ids=[kb["id"]], workspace=WORKSPACE)
    view = citation_viewer(db, chunk_id, mine)
    assert view is not None
    assert view["kind"] == "pdf" and view["content_type"] == "application/pdf"
    assert (view["chunk_id"], view["document_id"], view["kb_id"]) == (
        chunk_id,
        pdf_doc["id"],
        kb["id"],
    )
    assert view["version_id"] == pdf_doc["active_version_id"]
    assert view["filename"] == "report.pdf" and view["text"] == text
    assert view["char_end"] - view["char_start"] == len(text)
    assert (view["page_start"], view["page_end"]) == (1, 2)
    pages = view["pages"]
    assert [(p["number"], p["width"], p["height"]) for p in pages] == [
        (1, 612.0, 792.0),
        (2, 612.0, 792.0),
    ]
    # One box per drawn line, top to bottom, where paragraph_lines drew them: x=72 and
    # baselines at y = 720, 707, 681 (PDF, from the bottom) on each page.
    drawn = {1: [720, 707, 681], 2: [720, 694]}
    for page in pages:
        boxes = page["boxes"]
        assert len(boxes) == len(drawn[page["number"]])
        for (x0, y0, x1, y1), baseline in zip(boxes, drawn[page["number"]], strict=True):
            assert abs(x0 - 72) < 1 and 72 < x1 <= 612
            assert y0 < 792 - baseline < y1 and y1 - y0 < 20

    [(md_chunk, *_)] = _chunks(clean_stack, md_doc["id"])
    md_view = citation_viewer(db, md_chunk, mine)
    assert md_view is not None
    assert md_view["kind"] == "text" and md_view["pages"] == []
    assert md_view["content_type"].startswith("text/markdown")
    assert md_view["page_start"] is None and md_view["filename"] == "notes.md"
    assert (
        md_view["text"] == md_view["text"].strip() and "A dividend was declared." in md_view["text"]
    )
    assert md_view["char_end"] - md_view["char_start"] == len(md_view["text"])

    # Scope is checked in the query: another knowledge base, none, or garbage see nothing.
    other = api.create_kb("elsewhere")

    def scope(*kb_ids: str, workspace: str = WORKSPACE) -> Scope:
        return Scope(kb_ids=kb_ids, workspace=workspace)

    assert citation_viewer(db, chunk_id, scope(other["id"])) is None
    assert citation_viewer(db, chunk_id, scope()) is None
    assert citation_viewer(db, chunk_id, scope("not-a-uuid")) is None
    assert citation_viewer(db, chunk_id, scope(other["id"], kb["id"])) == view
    assert citation_viewer(db, chunk_id, scope(kb["id"], workspace="elsewhere")) is None
    assert citation_viewer(db, max(chunk_id, md_chunk) + 1000, mine) is None
    assert citation_viewer(db, 2**63, mine) is None


def test_only_chunks_of_the_active_version_are_viewable(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    db = clean_stack.database
    rt = clean_stack.runtime
    kb = Api(clean_stack).create_kb("versions")
    mine = Scope(kb_ids=[kb["id"]], workspace=WORKSPACE)

    def finish(version_id: str) -> None:
        for task in recorder.tasks_for(version_id):
            embed_batch(rt, task)
        assert index_version(rt, version_id)

    document_id, v1 = store_version(clean_stack, kb["id"], TEXT_V1)
    assert parse_version(rt, v1) and chunk_version(rt, v1)
    first = _chunks(clean_stack, document_id)[0][0]
    assert citation_viewer(db, first, mine) is None, "not viewable before its version is ready"
    finish(v1)
    view = citation_viewer(db, first, mine)
    assert view is not None and view["version_id"] == v1 and view["kind"] == "text"

    # A new version's chunks exist before it is indexed, but readers still see v1.
    _, v2 = store_version(clean_stack, kb["id"], TEXT_V2)
    assert parse_version(rt, v2) and chunk_version(rt, v2)
    second = next(row[0] for row in _chunks(clean_stack, document_id) if row[1] == v2)
    assert citation_viewer(db, second, mine) is None
    assert citation_viewer(db, first, mine) == view

    finish(v2)
    assert citation_viewer(db, first, mine) is None, "the superseded version's chunk is gone"
    now = citation_viewer(db, second, mine)
    assert now is not None and now["version_id"] == v2 and "pears" in now["text"]
