"""Offline token counting: the vendored MiniLM WordPiece tokenizer and the UTF-8 bound."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.tokens import (
    MINILM_MAX_INPUT_TOKENS,
    TokenCounter,
    WordPieceCounter,
    _segments,
    get_counter,
    utf8_bound,
)


@pytest.fixture(scope="module")
def counter() -> WordPieceCounter:
    return get_counter()


def test_counts_exclude_special_tokens(counter: WordPieceCounter) -> None:
    assert counter.count("hello world") == 2
    assert counter.count("") == 0
    assert MINILM_MAX_INPUT_TOKENS == 254


def test_no_truncation_or_padding(counter: WordPieceCounter) -> None:
    # The vendored file truncates/pads to 128; a counter must not.
    assert counter.count("word " * 1000) == 1000
    assert counter.count("a") == 1


def test_offsets_point_at_the_text(counter: WordPieceCounter) -> None:
    text = "Hello, Wörld! supercalifragilistic 日本"
    spans = counter.offsets(text)
    pieces = [text[start:end] for start, end in spans]
    assert pieces[:4] == ["Hello", ",", "Wörld", "!"]
    assert "".join(pieces[4:-2]) == "supercalifragilistic"
    assert pieces[-2:] == ["日", "本"]
    assert len(spans) == counter.count(text)


def test_long_text_is_segmented_without_changing_tokens(counter: WordPieceCounter) -> None:
    line = "The quick brown fox, naïvely un-jumping over 12.5% of lazy dogs. 東京\n"
    text = line * 2000  # ~140k characters: several segments
    whole = counter.tokenizer.encode(text, add_special_tokens=False)
    assert counter.offsets(text) == list(whole.offsets)
    assert counter.count(text) == len(whole)


def test_segments_cut_only_at_spaces() -> None:
    text = ("x" * 50 + " ") * 100 + "y" * 500 + "\n" + "z" * 10
    pieces = _segments(text, 120)
    assert "".join(piece for _, piece in pieces) == text
    for offset, piece in pieces:
        assert text[offset : offset + len(piece)] == piece
        assert offset == 0 or text[offset] in " \n"


def test_count_batch_matches_count(counter: WordPieceCounter) -> None:
    texts = ["", "one", "two words", "Ünïcödé and emoji 🎉", "x " * 300]
    assert counter.count_batch(texts) == [counter.count(t) for t in texts]
    assert counter.count_batch([]) == []


def test_is_a_token_counter(counter: WordPieceCounter) -> None:
    assert isinstance(counter, TokenCounter)
    assert get_counter() is counter


def test_tokenizer_loads_lazily_once() -> None:
    code = (
        "import sys; from shared.tokens import WordPieceCounter, _loaded;"
        "c = WordPieceCounter(); assert 'tokenizers' not in sys.modules;"
        "c.count('x'); WordPieceCounter().count('y'); assert len(_loaded) == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("abc", 3), ("é", 2), ("日本", 6), ("🎉", 4), ("a\u0301", 3)],
)
def test_utf8_bound_is_the_byte_length(text: str, expected: int) -> None:
    assert utf8_bound(text) == expected == len(text.encode("utf-8"))
