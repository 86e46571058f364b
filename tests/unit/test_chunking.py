"""The chunker: token bounds, coverage, structure-aware breaks, provenance."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from shared.chunking import chunk_document, layout_metadata
from shared.models import Block, ChunkDraft, PageSpan, ParsedDocument, TextBox
from shared.tokens import WordPieceCounter, get_counter


@pytest.fixture(scope="module")
def counter() -> WordPieceCounter:
    return get_counter()


def build(
    parts: Sequence[tuple[str, str] | tuple[str, str, int]],
    *,
    pages: Sequence[int] | None = None,
) -> ParsedDocument:
    """A document from ``(kind, text[, level])`` parts, blocks joined by blank lines.

    ``pages`` gives the page number of each part (page spans are derived from it).
    """
    text, blocks, position = "", [], 0
    for index, part in enumerate(parts):
        kind, body = part[0], part[1]
        level = part[2] if len(part) > 2 else (1 if kind == "heading" else None)
        if text:
            text += "\n\n"
            position += 2
        page = pages[index] if pages else None
        blocks.append(
            Block(kind=kind, start=position, end=position + len(body), page=page, level=level)  # type: ignore[arg-type]
        )
        text += body
        position += len(body)
    spans: list[PageSpan] = []
    if pages:
        for number in sorted(set(pages)):
            mine = [b for b, p in zip(blocks, pages, strict=True) if p == number]
            spans.append(PageSpan(number=number, start=mine[0].start, end=mine[-1].end))
    return ParsedDocument(content_type="text/markdown", text=text, blocks=blocks, pages=spans)


def check_invariants(
    parsed: ParsedDocument,
    chunks: list[ChunkDraft],
    counter: WordPieceCounter,
    max_tokens: int,
    hard_max_bytes: int | None = None,
) -> None:
    text = parsed.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(text))
    previous: ChunkDraft | None = None
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start : chunk.char_end]
        assert chunk.text.strip(), "empty chunk"
        assert chunk.token_count == counter.count(chunk.text) <= max_tokens
        if hard_max_bytes is not None:
            assert len(chunk.text.encode("utf-8")) <= hard_max_bytes
        if previous is not None:  # document order, always moving forward
            assert chunk.char_start > previous.char_start
            assert chunk.char_end > previous.char_end
        covered[chunk.char_start : chunk.char_end] = b"\x01" * len(chunk.text)
        previous = chunk
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"uncovered text at {missing[:5]}: {text[missing[0] : missing[0] + 20]!r}"


def paragraph(rng: random.Random, words: int) -> str:
    vocabulary = ["revenue", "grew", "net", "income", "the", "quarter", "Apple", "risk", "of"]
    sentences, current = [], []
    for i in range(words):
        current.append(rng.choice(vocabulary))
        if i % 12 == 11:
            sentences.append(" ".join(current).capitalize() + ".")
            current = []
    if current:
        sentences.append(" ".join(current).capitalize() + ".")
    return " ".join(sentences)


def table(rows: int, columns: int = 3) -> str:
    header = "| " + " | ".join(f"Col {c}" for c in range(columns)) + " |"
    rule = "|" + "---|" * columns
    body = [
        "| " + " | ".join(f"r{r}c{c} 1,234" for c in range(columns)) + " |" for r in range(rows)
    ]
    return "\n".join([header, rule, *body])


# -- basics -------------------------------------------------------------------------------


def test_blank_document_has_no_chunks(counter: WordPieceCounter) -> None:
    parsed = ParsedDocument(content_type="text/plain", text=" \n\n\t ", blocks=[])
    assert chunk_document(parsed, max_tokens=10, overlap_tokens=2, counter=counter) == []


def test_small_document_is_one_chunk(counter: WordPieceCounter) -> None:
    parsed = ParsedDocument(
        content_type="text/plain", text="\n  Hello there, world.  \n", blocks=[]
    )
    [chunk] = chunk_document(parsed, max_tokens=50, overlap_tokens=5, counter=counter)
    assert chunk.text == "Hello there, world."
    assert (chunk.char_start, chunk.char_end) == (3, 22)
    assert chunk.token_count == 5
    assert chunk.page_start is None and chunk.heading_path == []


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "hard_max_bytes"),
    [(0, 0, None), (10, 10, None), (10, -1, None), (10, 2, 3)],
)
def test_rejects_inconsistent_limits(
    counter: WordPieceCounter, max_tokens: int, overlap: int, hard_max_bytes: int | None
) -> None:
    parsed = build([("paragraph", "text")])
    with pytest.raises(ValueError):
        chunk_document(
            parsed,
            max_tokens=max_tokens,
            overlap_tokens=overlap,
            counter=counter,
            hard_max_bytes=hard_max_bytes,
        )


def test_long_paragraphs_overlap_at_word_boundaries(counter: WordPieceCounter) -> None:
    rng = random.Random(1)
    parsed = build([("paragraph", paragraph(rng, 400)), ("paragraph", paragraph(rng, 400))])
    chunks = chunk_document(parsed, max_tokens=60, overlap_tokens=12, counter=counter)
    check_invariants(parsed, chunks, counter, 60)
    assert len(chunks) > 10
    overlaps = 0
    for before, after in itertools.pairwise(chunks):
        assert parsed.text[after.char_start - 1].isspace()  # starts at a word
        if after.char_start < before.char_end:
            overlaps += 1
            shared = parsed.text[after.char_start : before.char_end]
            assert counter.count(shared) <= 12
    assert overlaps >= len(chunks) - 3


def test_prefers_sentence_ends(counter: WordPieceCounter) -> None:
    rng = random.Random(2)
    parsed = build([("paragraph", paragraph(rng, 600))])
    chunks = chunk_document(parsed, max_tokens=80, overlap_tokens=0, counter=counter)
    check_invariants(parsed, chunks, counter, 80)
    assert all(chunk.text.endswith(".") for chunk in chunks)
    assert all(chunk.text[0].isupper() for chunk in chunks)


def test_deterministic(counter: WordPieceCounter) -> None:
    rng = random.Random(3)
    parsed = build([("paragraph", paragraph(rng, 300)), ("table", table(20))])
    first = chunk_document(parsed, max_tokens=40, overlap_tokens=8, counter=counter)
    second = chunk_document(parsed, max_tokens=40, overlap_tokens=8, counter=counter)
    assert first == second


# -- structure ------------------------------------------------------------------------------


def test_tables_that_fit_are_kept_whole(counter: WordPieceCounter) -> None:
    rng = random.Random(4)
    grid = table(6)
    parsed = build(
        [("paragraph", paragraph(rng, 70)), ("table", grid), ("paragraph", paragraph(rng, 70))]
    )
    table_block = parsed.blocks[1]
    table_tokens = counter.count(grid)
    max_tokens = table_tokens + 20
    chunks = chunk_document(parsed, max_tokens=max_tokens, overlap_tokens=10, counter=counter)
    check_invariants(parsed, chunks, counter, max_tokens)
    touching = [
        c for c in chunks if c.char_start < table_block.end and c.char_end > table_block.start
    ]
    assert touching
    for chunk in touching:  # every chunk that touches the table holds all of it
        assert chunk.char_start <= table_block.start and chunk.char_end >= table_block.end
        assert grid in chunk.text


def test_large_tables_are_split_between_rows(counter: WordPieceCounter) -> None:
    grid = table(80)
    parsed = build([("heading", "Balance sheet"), ("table", grid)])
    chunks = chunk_document(parsed, max_tokens=50, overlap_tokens=0, counter=counter)
    check_invariants(parsed, chunks, counter, 50)
    assert len(chunks) > 5
    for chunk in chunks[1:]:
        assert parsed.text[chunk.char_start - 1] == "\n"  # a row starts the chunk
        assert chunk.text.startswith("| r") and chunk.text.endswith("|")
        assert chunk.heading_path == ["Balance sheet"]


def test_heading_paths_follow_levels(counter: WordPieceCounter) -> None:
    rng = random.Random(5)
    parsed = build(
        [
            ("heading", "# Annual Report", 1),
            ("paragraph", paragraph(rng, 60)),
            ("heading", "Risk  Factors", 2),
            ("paragraph", paragraph(rng, 60)),
            ("heading", "Results", 2),
            ("heading", "Revenue", 3),
            ("paragraph", paragraph(rng, 200)),
            ("heading", "Appendix", 1),
            ("paragraph", paragraph(rng, 60)),
        ]
    )
    chunks = chunk_document(parsed, max_tokens=70, overlap_tokens=10, counter=counter)
    check_invariants(parsed, chunks, counter, 70)
    by_start = {parsed.text[c.char_start : c.char_start + 8]: c.heading_path for c in chunks}
    assert by_start["# Annual"] == ["Annual Report"]
    assert by_start["Risk  Fa"] == ["Annual Report", "Risk Factors"]
    assert by_start["Results\n"] == ["Annual Report", "Results"]
    assert by_start["Appendix"] == ["Appendix"]
    # A chunk that starts inside the Revenue section carries the whole path.
    revenue = parsed.blocks[6]
    inside = [c for c in chunks if revenue.start < c.char_start < revenue.end]
    assert inside and all(c.heading_path == ["Annual Report", "Results", "Revenue"] for c in inside)


def test_headings_start_chunks_and_never_end_them(counter: WordPieceCounter) -> None:
    rng = random.Random(6)
    parts: list[tuple[str, str] | tuple[str, str, int]] = []
    for section in range(12):
        parts.append(("heading", f"Section {section}", 2))
        parts.append(("paragraph", paragraph(rng, rng.randint(20, 90))))
    parsed = build(parts)
    chunks = chunk_document(parsed, max_tokens=100, overlap_tokens=15, counter=counter)
    check_invariants(parsed, chunks, counter, 100)
    heading_spans = [(b.start, b.end) for b in parsed.blocks if b.kind == "heading"]
    starts_at_heading = 0
    for chunk in chunks:
        for _, end in heading_spans:
            assert chunk.char_end != end, "a heading was left at the end of a chunk"
        starts_at_heading += any(chunk.char_start == start for start, _ in heading_spans)
    assert starts_at_heading >= len(chunks) * 0.6


def test_pages_from_page_spans_and_blocks(counter: WordPieceCounter) -> None:
    rng = random.Random(7)
    parts: list[tuple[str, str] | tuple[str, str, int]] = [
        ("paragraph", paragraph(rng, 50)) for _ in range(8)
    ]
    pages = [1, 1, 2, 2, 2, 3, 4, 4]
    parsed = build(parts, pages=pages)
    chunks = chunk_document(parsed, max_tokens=90, overlap_tokens=10, counter=counter)
    check_invariants(parsed, chunks, counter, 90)

    def page_of(position: int) -> int:
        return next(p.number for p in reversed(parsed.pages) if p.start <= position)

    for chunk in chunks:
        assert chunk.page_start == page_of(chunk.char_start)
        assert chunk.page_end == page_of(chunk.char_end - 1)
    assert chunks[0].page_start == 1 and chunks[-1].page_end == 4
    assert any(c.page_start != c.page_end for c in chunks)

    # Without page spans, the blocks' pages are used.
    unpaged = parsed.model_copy(update={"pages": []})
    again = chunk_document(unpaged, max_tokens=90, overlap_tokens=10, counter=counter)
    assert [(c.page_start, c.page_end) for c in again] == [
        (c.page_start, c.page_end) for c in chunks
    ]


# -- hard cases -----------------------------------------------------------------------------


def test_monster_words_are_cut(counter: WordPieceCounter) -> None:
    cjk = "日本語の文章" * 200  # one char per token, no spaces
    unk = "a" * 5000  # a single [UNK] word piece
    parsed = build([("paragraph", "Intro words. " + cjk), ("code", unk), ("paragraph", "End.")])
    chunks = chunk_document(
        parsed, max_tokens=40, overlap_tokens=5, counter=counter, hard_max_bytes=300
    )
    check_invariants(parsed, chunks, counter, 40, 300)


def test_hard_byte_limit_with_multibyte_text(counter: WordPieceCounter) -> None:
    rng = random.Random(8)
    text = " ".join(rng.choice(["ünïcödé", "emoji🎉🎉", "東京都", "plain"]) for _ in range(2000))
    parsed = build([("paragraph", text)])
    chunks = chunk_document(
        parsed, max_tokens=500, overlap_tokens=20, counter=counter, hard_max_bytes=400
    )
    check_invariants(parsed, chunks, counter, 500, 400)
    assert max(len(c.text.encode()) for c in chunks) > 300  # the byte limit is what binds


def test_dropped_characters_are_still_covered(counter: WordPieceCounter) -> None:
    # Control characters and U+FFFD produce no tokens but are part of the text.
    text = "\x00start " + " ".join(f"w{i}\x01" for i in range(300)) + " \ufffd"
    parsed = ParsedDocument(content_type="text/plain", text=text, blocks=[])
    chunks = chunk_document(parsed, max_tokens=30, overlap_tokens=5, counter=counter)
    check_invariants(parsed, chunks, counter, 30)
    only_dropped = ParsedDocument(content_type="text/plain", text="\x00\x01\x02" * 50, blocks=[])
    chunks = chunk_document(
        only_dropped, max_tokens=5, overlap_tokens=1, counter=counter, hard_max_bytes=40
    )
    check_invariants(only_dropped, chunks, counter, 5, 40)


class PessimisticCounter(WordPieceCounter):
    """Counts every word piece twice but reports the usual offsets: a counter whose
    per-token estimate is wrong, which must send the chunker down its measuring path."""

    def count(self, text: str) -> int:
        return 2 * super().count(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [2 * n for n in super().count_batch(texts)]


def test_wrong_estimates_still_give_bounded_chunks() -> None:
    counter = PessimisticCounter()
    rng = random.Random(9)
    parsed = build([("paragraph", paragraph(rng, 300)), ("table", table(10))])
    chunks = chunk_document(parsed, max_tokens=40, overlap_tokens=6, counter=counter)
    check_invariants(parsed, chunks, counter, 40)


# -- random documents (property test without hypothesis) ---------------------------------

_ALPHABET = ["word", "Tax", "é", "日本", "🎉", "x" * 130, "12.5%", "U.S.", "a-b", "\x07", "(c)"]


def random_document(rng: random.Random) -> ParsedDocument:
    parts: list[tuple[str, str] | tuple[str, str, int]] = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.choice(["heading", "paragraph", "paragraph", "list", "table", "code"])
        if kind == "heading":
            parts.append(
                (
                    "heading",
                    " ".join(rng.choices(_ALPHABET, k=rng.randint(1, 6))),
                    rng.randint(1, 4),
                )
            )
        elif kind == "table":
            parts.append(("table", table(rng.randint(1, 15), rng.randint(1, 4))))
        elif kind == "list":
            items = [
                " ".join(rng.choices(_ALPHABET, k=rng.randint(1, 15)))
                for _ in range(rng.randint(1, 6))
            ]
            parts.append(("list", "\n".join(f"- {item}" for item in items)))
        else:
            words = rng.choices(_ALPHABET, k=rng.randint(1, 200))
            separators = rng.choices([" ", " ", " ", ". ", "\n", ", ", ""], k=len(words))
            parts.append(
                (
                    kind,
                    "".join(w + s for w, s in zip(words, separators, strict=True)).strip() or "x",
                )
            )
    pages = sorted(rng.choices(range(1, 5), k=len(parts)))
    return build(parts, pages=pages)


@pytest.mark.parametrize("seed", range(150))
def test_invariants_hold_on_random_documents(counter: WordPieceCounter, seed: int) -> None:
    rng = random.Random(seed)
    parsed = random_document(rng)
    max_tokens = rng.choice([1, 2, 5, 8, 20, 50, 254])
    overlap = rng.randint(0, max_tokens - 1)
    hard_max_bytes = rng.choice([None, None, 4, 37, 200, 8191])
    chunks = chunk_document(
        parsed,
        max_tokens=max_tokens,
        overlap_tokens=overlap,
        counter=counter,
        hard_max_bytes=hard_max_bytes,
    )
    check_invariants(parsed, chunks, counter, max_tokens, hard_max_bytes)
    again = chunk_document(
        parsed,
        max_tokens=max_tokens,
        overlap_tokens=overlap,
        counter=counter,
        hard_max_bytes=hard_max_bytes,
    )
    assert again == chunks


# -- line boxes (PDF geometry) --------------------------------------------------------------


def with_line_boxes(parsed: ParsedDocument) -> ParsedDocument:
    """The document with a box per line of each block, as the PDF parser records them,
    each line at its own height, and page sizes on its spans."""
    boxes: list[TextBox] = []
    for block in parsed.blocks:
        position = block.start
        for line in parsed.text[block.start : block.end].split("\n"):
            top = 10.0 * len(boxes)
            boxes.append(
                TextBox(block.page or 1, position, position + len(line), 72, top, 540, top + 9)
            )
            position += len(line) + 1
    pages = [page.model_copy(update={"width": 612.0, "height": 792.0}) for page in parsed.pages]
    return parsed.model_copy(update={"boxes": boxes, "pages": pages})


def test_chunk_boxes_are_exactly_the_lines_the_chunk_touches(counter: WordPieceCounter) -> None:
    rng = random.Random(11)
    # Paragraphs of lines, as PDF paragraphs keep them; lines of a few sentences, so
    # chunks also end (and overlapping ones start) inside lines.
    parts: list[tuple[str, str] | tuple[str, str, int]] = [
        ("paragraph", "\n".join(paragraph(rng, 30) for _ in range(4))) for _ in range(8)
    ]
    parsed = with_line_boxes(build(parts, pages=[1, 1, 1, 2, 2, 2, 3, 3]))
    chunks = chunk_document(parsed, max_tokens=60, overlap_tokens=12, counter=counter)
    check_invariants(parsed, chunks, counter, 60)
    assert len(chunks) > 5
    clipped_somewhere = False
    for chunk in chunks:
        touched = [
            box for box in parsed.boxes if box.start < chunk.char_end and chunk.char_start < box.end
        ]
        # The same lines (same geometry), in order, offsets clipped to the chunk.
        assert [(b.page, b.y0) for b in chunk.boxes] == [(b.page, b.y0) for b in touched]
        for mine, line in zip(chunk.boxes, touched, strict=True):
            assert (mine.start, mine.end) == (
                max(line.start, chunk.char_start),
                min(line.end, chunk.char_end),
            )
            clipped_somewhere |= (mine.start, mine.end) != (line.start, line.end)
        # Every character of the chunk's text is in one of its boxes.
        inside = {i for box in chunk.boxes for i in range(box.start, box.end)}
        assert all(
            i in inside
            for i in range(chunk.char_start, chunk.char_end)
            if not parsed.text[i].isspace()
        )
        assert {b.page for b in chunk.boxes} == set(
            range(chunk.page_start or 0, (chunk.page_end or 0) + 1)
        )
    assert clipped_somewhere, "overlapping chunks start inside lines"


def test_layout_metadata_is_compact_and_lists_page_sizes(counter: WordPieceCounter) -> None:
    rng = random.Random(5)
    parts: list[tuple[str, str] | tuple[str, str, int]] = [
        ("paragraph", "\n".join(paragraph(rng, 9) for _ in range(4))) for _ in range(4)
    ]
    parsed = with_line_boxes(build(parts, pages=[1, 1, 2, 2]))
    [chunk] = chunk_document(parsed, max_tokens=500, overlap_tokens=0, counter=counter)
    metadata = layout_metadata(chunk, parsed.pages)
    assert metadata["page_sizes"] == {"1": [612.0, 792.0], "2": [612.0, 792.0]}
    assert metadata["boxes"] == [[b.page, b.x0, b.y0, b.x1, b.y1] for b in parsed.boxes]
    assert len(metadata["boxes"]) == 16
    # Unpaged formats have nothing to record.
    plain = build([("paragraph", "Just text.")])
    [draft] = chunk_document(plain, max_tokens=50, overlap_tokens=0, counter=counter)
    assert draft.boxes == [] and layout_metadata(draft, plain.pages) == {}
