"""Split a parsed document into token-bounded, overlapping chunks with provenance.

The text is tokenised once; every decision works on the resulting arrays of token
offsets, so chunking stays linear in the document size. Each token boundary gets a
*break priority* (heading > block > sentence/line > word > token), and each chunk takes
the best break that still leaves it reasonably full. Tables and code blocks that fit in
a chunk are never cut; larger ones are cut between rows/lines.

Guarantees (see ``tests/unit/test_chunking.py``):

* ``chunk.text == parsed.text[chunk.char_start:chunk.char_end]`` (nothing injected);
* ``chunk.boxes`` are the document's text boxes (PDF lines) that overlap the chunk,
  their offsets clipped to it;
* ``counter.count(chunk.text) <= max_tokens`` and, when given,
  ``len(chunk.text.encode()) <= hard_max_bytes``;
* every non-whitespace character belongs to at least one chunk; no chunk is empty;
* the same input always gives the same chunks.

Token counts are checked on the exact chunk texts at the end. Boundaries at
whitespace make the per-token estimate exact for WordPiece; if a counter ever
disagrees (cuts inside words, exotic tokenizers), the document is re-planned with
every chunk measured before it is accepted.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

from shared.models import Block, ChunkDraft, PageSpan, ParsedDocument, TextBox
from shared.tokens import TokenCounter

# Break priorities of a token boundary (the chunk ends just before that token).
_NO_BREAK = -1  # inside a table/code block/heading that is kept whole
_TOKEN = 0  # inside a word (only for monster words), or right after a heading
_CELL_WORD = 1  # a word boundary inside a table too large to keep whole
_WORD = 2
_SENTENCE = 4  # sentence end or line start (list items, table rows, code lines)
_BLOCK = 6  # paragraph/list/table start, or a blank line in unstructured text
_HEADING = 8
_END = 10  # the end of the document: the rest fits, take it

# A break of a given priority is only taken if the chunk is at least this full (as a
# fraction of the tokens that would fit): a heading may end a short chunk, a word
# boundary only a nearly full one. Without any eligible break, the best break anywhere
# wins; a word inside a table row is never "eligible", so large tables are cut between
# rows even when that leaves a chunk half empty.
_MIN_FILL = {
    _TOKEN: 0.0,
    _CELL_WORD: 2.0,
    _WORD: 0.8,
    _SENTENCE: 0.6,
    _BLOCK: 0.5,
    _HEADING: 0.2,
}

_KEEP_WHOLE = frozenset({"table", "code", "heading"})

# Sentence ends: terminal punctuation (and closing quotes/brackets) then whitespace;
# also any line break, so list items, table rows and code lines are sentence-like.
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s+|\n\s*")
_PARAGRAPH_END = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+")


def chunk_document(
    parsed: ParsedDocument,
    *,
    max_tokens: int,
    overlap_tokens: int,
    counter: TokenCounter,
    hard_max_bytes: int | None = None,
) -> list[ChunkDraft]:
    """Split ``parsed`` into chunks of at most ``max_tokens`` tokens.

    Chunks end preferably before a heading, then between blocks, then between
    sentences, then between words, and only inside a word that is itself longer than
    a chunk. A chunk that does not end before a heading makes the next one start about
    ``overlap_tokens`` earlier, at a sentence or word start (never before a heading
    the previous chunk contained, and never inside a table kept whole).

    Args:
        parsed: The parsed document (text, blocks, pages).
        max_tokens: Most tokens per chunk, as measured by ``counter`` on the chunk's
            exact text (without special tokens).
        overlap_tokens: Tokens the next chunk repeats from the end of the previous
            one; less than ``max_tokens``.
        counter: The token counter of the embedding model (or a sizing proxy).
        hard_max_bytes: If given, most UTF-8 bytes per chunk: a provable token bound
            for byte-level BPE models (see :func:`shared.tokens.utf8_bound`).

    Returns:
        Chunks with ordinals ``0..n-1`` in document order; empty for blank text.

    Raises:
        ValueError: If the limits are inconsistent.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("overlap_tokens must be >= 0 and < max_tokens")
    if hard_max_bytes is not None and hard_max_bytes < 4:
        raise ValueError("hard_max_bytes must be at least 4 (one UTF-8 code point)")
    text = parsed.text
    if not text.strip():
        return []

    planner = _Planner(
        text,
        counter.offsets(text),
        parsed.blocks,
        counter,
        max_tokens,
        overlap_tokens,
        hard_max_bytes,
    )
    spans = planner.plan(verify=False)
    counts = counter.count_batch([text[start:end] for start, end in spans])
    if any(count > max_tokens for count in counts):
        # The per-token estimate was off (a cut inside a word tokenises differently):
        # plan again, measuring every chunk as it is cut.
        spans = planner.plan(verify=True)
        counts = counter.count_batch([text[start:end] for start, end in spans])
        if any(count > max_tokens for count in counts):  # pragma: no cover - a bug
            raise RuntimeError("chunker produced a chunk over max_tokens")

    locate = _Locator(parsed)
    return [
        ChunkDraft(
            ordinal=ordinal,
            text=text[start:end],
            char_start=start,
            char_end=end,
            page_start=locate.page(start),
            page_end=locate.page(end - 1),
            heading_path=locate.heading_path(start),
            token_count=count,
            boxes=locate.boxes(start, end),
        )
        for ordinal, ((start, end), count) in enumerate(zip(spans, counts, strict=True))
    ]


def layout_metadata(draft: ChunkDraft, pages: Sequence[PageSpan]) -> dict[str, Any]:
    """The chunk's place on its pages, compact, for ``chunks.metadata``.

    Enough for a viewer to highlight the chunk without reading the parsed document:
    ``{"boxes": [[page, x0, y0, x1, y1], ...], "page_sizes": {"3": [width, height]}}``
    in the frame of :class:`~shared.models.TextBox`; each key only when there is
    something to say (so ``{}`` for unpaged formats).

    Args:
        draft: The chunk.
        pages: The parsed document's page spans (their sizes).
    """
    metadata: dict[str, Any] = {}
    if draft.boxes:
        metadata["boxes"] = [[box.page, box.x0, box.y0, box.x1, box.y1] for box in draft.boxes]
    if draft.page_start is not None:
        last = draft.page_end if draft.page_end is not None else draft.page_start
        sizes = {
            str(page.number): [page.width, page.height]
            for page in pages
            if draft.page_start <= page.number <= last
            and page.width is not None
            and page.height is not None
        }
        if sizes:
            metadata["page_sizes"] = sizes
    return metadata


class _Planner:
    """Chooses chunk spans over precomputed token offsets and break priorities."""

    def __init__(
        self,
        text: str,
        offsets: Sequence[tuple[int, int]],
        blocks: Sequence[Block],
        counter: TokenCounter,
        max_tokens: int,
        overlap_tokens: int,
        hard_max_bytes: int | None,
    ) -> None:
        self.text = text
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap = overlap_tokens
        self.hard_max_bytes = hard_max_bytes
        self.ascii = text.isascii()
        self.starts = [start for start, _ in offsets]
        self.ends = [end for _, end in offsets]
        self.n = len(offsets)
        self.text_end = len(text.rstrip())
        self.priority = self._priorities(blocks)
        self.heading_tokens = [k for k, p in enumerate(self.priority) if p == _HEADING]

    # -- setup -----------------------------------------------------------------------

    def _priorities(self, blocks: Sequence[Block]) -> list[int]:
        """Return the break priority before each token (index ``n`` = document end)."""
        text, starts, n = self.text, self.starts, self.n
        priority = [_TOKEN] * (n + 1)
        priority[n] = _END
        for k in range(1, n):
            if text[starts[k] - 1].isspace():
                priority[k] = _WORD
        self._mark_text_breaks(priority)
        self._mark_blocks(priority, blocks)
        return priority

    def _mark_text_breaks(self, priority: list[int]) -> None:
        """Raise ``priority`` at sentence and paragraph ends found in the text."""
        text, starts, n = self.text, self.starts, self.n
        for pattern, level in ((_SENTENCE_END, _SENTENCE), (_PARAGRAPH_END, _BLOCK)):
            for match in pattern.finditer(text):
                position = match.end()
                # "e.g. foo" is not a sentence end; "Foo. Bar" and "1. Item" are.
                if (
                    level == _SENTENCE
                    and text[match.start()] != "\n"
                    and (position < len(text) and text[position].islower())
                ):
                    continue
                k = bisect_left(starts, position)
                if 0 < k < n:
                    priority[k] = max(priority[k], level)

    def _mark_blocks(self, priority: list[int], blocks: Sequence[Block]) -> None:
        """Set ``priority`` at block starts, and inside blocks kept whole or tables."""
        starts = self.starts
        previous_heading = False
        for block in sorted(blocks, key=lambda b: b.start):
            first = bisect_left(starts, block.start)
            after = bisect_left(starts, block.end)
            if first >= after:  # no token in this block (blank)
                continue
            if first > 0:
                priority[first] = _HEADING if block.kind == "heading" else _BLOCK
                if previous_heading:  # never leave a heading alone at a chunk's end
                    priority[first] = _TOKEN
            previous_heading = block.kind == "heading"
            if block.kind in _KEEP_WHOLE and self._fits(first, after, block.start, block.end):
                for k in range(first + 1, after):
                    priority[k] = _NO_BREAK
            elif block.kind == "table":
                for k in range(first + 1, after):
                    if priority[k] == _WORD:
                        priority[k] = _CELL_WORD

    def _fits(self, first: int, after: int, start: int, end: int) -> bool:
        """Whether tokens ``first..after-1`` (chars ``start..end``) fit in one chunk."""
        if after - first > self.max_tokens:
            return False
        return self.hard_max_bytes is None or self._bytes(start, end) <= self.hard_max_bytes

    # -- helpers -----------------------------------------------------------------------

    def _bytes(self, start: int, end: int) -> int:
        return end - start if self.ascii else len(self.text[start:end].encode("utf-8"))

    def _trim(self, end: int, floor: int) -> int:
        """Move ``end`` back over trailing whitespace, not below ``floor``."""
        text = self.text
        while end > floor and text[end - 1].isspace():
            end -= 1
        return end

    def _skip_space(self, position: int) -> int:
        text = self.text
        while position < len(text) and text[position].isspace():
            position += 1
        return position

    def _end_at(self, k: int, start: int) -> int:
        """The trimmed end of a chunk from ``start`` that stops before token ``k``."""
        return self._trim(self.starts[k] if k < self.n else len(self.text), start)

    def _fits_bytes(self, start: int, end: int) -> bool:
        return self.hard_max_bytes is None or self._bytes(start, end) <= self.hard_max_bytes

    def _count_ok(self, start: int, end: int, verify: bool) -> bool:
        return not verify or self.counter.count(self.text[start:end]) <= self.max_tokens

    # -- planning ----------------------------------------------------------------------

    def plan(self, *, verify: bool) -> list[tuple[int, int]]:
        """Return ``(start, end)`` character spans of the chunks, in order.

        Args:
            verify: Measure each chunk with the counter before accepting it (slow path,
                for when the per-token estimate proved wrong).
        """
        spans: list[tuple[int, int]] = []
        start = self._skip_space(0)
        previous_end = -1
        natural_next = start  # where the next chunk starts without overlap
        while start < self.text_end:
            cut = self._cut(start, previous_end, verify)
            if cut is None:  # an overlapping start cannot get past the previous end
                start = natural_next
                continue
            end, next_token, first_token = cut
            spans.append((start, end))
            previous_end = end
            if next_token is None:  # cut inside a token: continue right there
                start = natural_next = self._skip_space(end)
                continue
            if next_token >= self.n:
                break
            natural_next = self.starts[next_token]
            start = self.starts[self._overlap_start(first_token, next_token)]
        return spans

    def _cut(
        self, start: int, previous_end: int, verify: bool
    ) -> tuple[int, int | None, int] | None:
        """Choose the end of the chunk starting at ``start``.

        Returns:
            ``(end, next_token, first_token)``: the chunk's trimmed end, the token the
            next chunk would start at without overlap (None after a cut inside a
            token) and the chunk's first token; or None if, from this (overlapping)
            start, no chunk can end after ``previous_end``.
        """
        first = bisect_right(self.ends, start)  # first token ending after ``start``
        if first >= self.n:  # only characters the tokenizer drops remain
            return self._char_cut(start, self.text_end, verify), None, first

        lowest = first + 1
        if previous_end >= 0:  # the chunk must end after the previous one
            lowest = max(lowest, bisect_right(self.starts, previous_end))
            while lowest <= self.n and self._end_at(lowest, start) <= previous_end:
                lowest += 1
        highest = min(first + self.max_tokens, self.n)
        highest = self._limit_bytes(start, first, highest)
        if highest <= first:  # not even one token fits in the byte limit
            if lowest > first + 1:
                return None
            limit = self._end_at(first + 1, start)
            return self._char_cut(start, limit, verify), None, first
        if highest < lowest:
            return None

        k = highest if highest == self.n else self._best_break(first, lowest, highest)
        while verify:
            excess = self.counter.count(self.text[start : self._end_at(k, start)]) - self.max_tokens
            if excess <= 0:
                break
            if k > lowest:
                k = max(lowest, k - excess)
            elif lowest > first + 1:
                return None
            else:
                return self._char_cut(start, self._end_at(k, start), verify), None, first
        return self._end_at(k, start), k, first

    def _limit_bytes(self, start: int, first: int, highest: int) -> int:
        """Lower ``highest`` to the last token end that keeps the chunk within bytes."""
        if self.hard_max_bytes is None or self._fits_bytes(start, self._end_at(highest, start)):
            return highest
        low, high = first, highest  # ``low`` fits (or is ``first``: nothing), ``high`` not
        while high - low > 1:
            middle = (low + high) // 2
            if self._fits_bytes(start, self._end_at(middle, start)):
                low = middle
            else:
                high = middle
        return low

    def _best_break(self, first: int, lowest: int, highest: int) -> int:
        """Pick the break in ``lowest..highest`` with the best (priority, position)."""
        priority = self.priority
        window = highest - first
        fill = {p: first + math.ceil(share * window) for p, share in _MIN_FILL.items()}
        floor = max(lowest, fill[_HEADING])
        best, best_priority = -1, _NO_BREAK
        for k in range(highest, floor - 1, -1):  # scanning down: first seen = rightmost
            p = priority[k]
            if p > best_priority and p >= _TOKEN and k >= fill[p]:
                best, best_priority = k, p
                if p >= _HEADING:
                    break
        if best_priority > _TOKEN:
            return best
        # Nothing eligible (e.g. a table kept whole fills the window, or a monster
        # word): take the best break anywhere, however short the chunk gets, and cut
        # inside a word only if there is no other choice.
        for k in range(highest, lowest - 1, -1):
            if priority[k] > best_priority:
                best, best_priority = k, priority[k]
        return best if best >= 0 else highest

    def _overlap_start(self, first: int, next_token: int) -> int:
        """Token where the chunk after one ending before ``next_token`` starts."""
        if not self.overlap or self.priority[next_token] == _HEADING:
            return next_token  # a new section starts clean
        floor = max(first + 1, next_token - self.overlap)
        # Never reach back over a heading the previous chunk contains.
        h = bisect_left(self.heading_tokens, next_token) - 1
        if h >= 0 and self.heading_tokens[h] > first:
            floor = max(floor, self.heading_tokens[h])
        priority = self.priority
        for k in range(floor, min(next_token, floor + self.overlap // 2 + 1)):
            if priority[k] >= _SENTENCE:
                return k
        for k in range(floor, next_token):
            if priority[k] >= _WORD:
                return k
        return next_token

    def _char_cut(self, start: int, limit: int, verify: bool) -> int:
        """Cut inside a token: the longest ``text[start:end]`` within both limits."""
        low, high = start + 1, limit  # find the largest end in [low, high] that fits
        if not (self._fits_bytes(start, high) and self._count_ok(start, high, verify)):
            while high - low > 1:
                middle = (low + high) // 2
                if self._fits_bytes(start, middle) and self._count_ok(start, middle, verify):
                    low = middle
                else:
                    high = middle
            high = low
        if not self._count_ok(start, high, verify):
            raise ValueError("a single character exceeds max_tokens")
        return self._trim(high, start + 1)


class _Locator:
    """Maps character offsets to pages and heading paths."""

    def __init__(self, parsed: ParsedDocument) -> None:
        self.pages = sorted(parsed.pages, key=lambda p: p.start)
        self.page_starts = [p.start for p in self.pages]
        blocks = sorted(parsed.blocks, key=lambda b: b.start)
        self.paged_blocks = [b for b in blocks if b.page is not None]
        self.block_starts = [b.start for b in self.paged_blocks]
        # The heading stack in effect after each heading, in document order.
        self.heading_starts: list[int] = []
        self.paths: list[list[str]] = []
        stack: list[tuple[int, str]] = []
        for block in blocks:
            if block.kind != "heading":
                continue
            title = _heading_text(parsed.text[block.start : block.end])
            if not title:
                continue
            level = block.level or 1
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            self.heading_starts.append(block.start)
            self.paths.append([t for _, t in stack])
        # Boxes do not overlap one another, so sorted by start they are sorted by end.
        self.text_boxes = sorted(parsed.boxes, key=lambda box: box.start)
        self.box_ends = [box.end for box in self.text_boxes]

    def page(self, position: int) -> int | None:
        """The page holding ``position``: from page spans, else from the blocks."""
        if self.pages:
            return self.pages[max(bisect_right(self.page_starts, position) - 1, 0)].number
        if self.paged_blocks:
            index = max(bisect_right(self.block_starts, position) - 1, 0)
            return self.paged_blocks[index].page
        return None

    def boxes(self, start: int, end: int) -> list[TextBox]:
        """The boxes overlapping ``start..end``, their offsets clipped to that range.

        The geometry stays the whole line's: a chunk that starts or ends inside a line
        (a word-level cut) highlights that line whole.
        """
        found: list[TextBox] = []
        for index in range(bisect_right(self.box_ends, start), len(self.text_boxes)):
            box = self.text_boxes[index]
            if box.start >= end:
                break
            found.append(box._replace(start=max(box.start, start), end=min(box.end, end)))
        return found

    def heading_path(self, position: int) -> list[str]:
        """Headings in effect at ``position`` (a heading starting there included)."""
        index = bisect_right(self.heading_starts, position) - 1
        return list(self.paths[index]) if index >= 0 else []


def _heading_text(raw: str) -> str:
    """A heading's text on one line, without Markdown ``#`` markers."""
    return " ".join(_MARKDOWN_HEADING.sub("", raw.strip()).split())
