"""The faster lexical helpers and streaming filter give exactly the old results.

``terms`` caches each word's normal form, ``split_sentences`` reads the word before a
period only when it needs it, and ``CitationFilter.feed`` skips its regexes for text
without a ``[``; each is checked here against the straightforward definition on
random text.
"""

from __future__ import annotations

import random

import pytest

from shared.answering import citations
from shared.answering.citations import (
    CitationFilter,
    content_words,
    filter_markers,
    normalize_term,
    split_sentences,
    terms,
)

PIECES = [
    "Revenue", "revenues", "Apple's", "U.S.", "Inc.", "e.g.", "the", "and", "10-Q", "3.5",
    "companies", "glass", "J.", "No.", "rose", "fell", "[1]", "[2, 9]", "[", "]", "[12",
    ".", "!", "?", ")", "\"", "\u201d", "\u2019s", ",", " ", " ", " ", "\n", "\n\n", "\t",
]  # fmt: skip


def random_text(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(PIECES) + rng.choice(["", " "]) for _ in range(count))


def old_split_sentences(text: str) -> list[tuple[int, int]]:
    """``split_sentences`` as it was: the words before every candidate end split."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in citations._SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if match.group(0)[0] == "." and (last in citations._ABBREVIATIONS or len(last) == 1):
            continue
        citations._append_span(spans, text, start, match.start() + len(match.group(0).rstrip()))
        start = match.end()
    citations._append_span(spans, text, start, len(text))
    return spans


@pytest.mark.parametrize("seed", range(3))
def test_terms_and_sentences_match_their_definitions(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        text = random_text(rng, rng.randint(0, 60))
        assert terms(text) == [normalize_term(word) for word in content_words(text)]
        assert split_sentences(text) == old_split_sentences(text)


@pytest.mark.parametrize("seed", range(3))
def test_streaming_filter_matches_the_batch_filter_on_random_splits(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1000):
        text = random_text(rng, rng.randint(0, 40))
        valid = set(rng.sample(range(1, 13), rng.randint(0, 4)))
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 8))))
        marker_filter = CitationFilter(valid)
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        streamed = "".join(marker_filter.feed(piece) for piece in pieces) + marker_filter.flush()
        assert streamed == filter_markers(text, valid), (text, valid, pieces)
