"""The hashing embedder, the embedder factory and the package's import weight."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from shared.embeddings import (
    Embedder,
    UnknownEmbeddingModelError,
    clear_embedder_cache,
    get_embedder,
)
from shared.embeddings.hashing import HashingEmbedder
from shared.errors import PermanentError
from shared.tokens import WordPieceCounter


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_unit_length_and_sized() -> None:
    embedder = HashingEmbedder(384)
    vectors = embedder.embed(["Revenue grew 8% this quarter.", "x", "Ünïcödé 日本語 text"])
    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in vectors:
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0)


def test_text_without_words_is_the_zero_vector() -> None:
    assert HashingEmbedder(16).embed(["", " ... !!"]) == [[0.0] * 16, [0.0] * 16]
    assert HashingEmbedder(16).embed([]) == []


def test_deterministic_across_processes() -> None:
    text = "Net sales increased due to higher iPhone sales."
    here = HashingEmbedder(64).embed([text])[0]
    code = (
        "import json; from shared.embeddings.hashing import HashingEmbedder;"
        f"print(json.dumps(HashingEmbedder(64).embed([{text!r}])[0]))"
    )
    # A different string-hash seed proves Python's randomised hash() is not involved.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    assert json.loads(out.stdout) == here


def test_similar_texts_are_closer_than_unrelated() -> None:
    embedder = HashingEmbedder()
    query, related, unrelated = embedder.embed(
        [
            "What were Apple's iPhone net sales in the quarter?",
            "iPhone net sales for the quarter were $42.6 billion, Apple said.",
            "The weather in Lisbon is mild and sunny in spring.",
        ]
    )
    assert cosine(query, related) > cosine(query, unrelated) + 0.2
    assert cosine(query, query) == pytest.approx(1.0)


def test_case_and_punctuation_do_not_matter() -> None:
    embedder = HashingEmbedder(128)
    a, b = embedder.embed(["Risk Factors: Supply chain.", "risk factors supply chain"])
    assert a == pytest.approx(b)


def test_factory_parses_names_and_caches() -> None:
    clear_embedder_cache()
    embedder = get_embedder("hashing-384")
    assert isinstance(embedder, Embedder)
    assert get_embedder("hashing-384") is embedder
    assert (embedder.model, embedder.dimension, embedder.max_input_tokens) == (
        "hashing-384",
        384,
        8192,
    )
    assert embedder.max_input_bytes is None
    assert isinstance(embedder.counter, WordPieceCounter)
    assert get_embedder("hashing-128").dimension == 128
    assert get_embedder("hashing", 256).model == "hashing-256"
    assert get_embedder("hashing-64", 64).dimension == 64


@pytest.mark.parametrize(
    ("model", "dimension"),
    [
        ("word2vec", None),
        ("hashing-abc", None),
        ("hashing-384", 128),
        ("hashing-4", None),
        ("minilm", 768),
        ("openai:", None),
        ("openai:my-own-model", None),
        ("openai:text-embedding-ada-002", 64),
    ],
)
def test_factory_rejects_unknown_models(model: str, dimension: int | None) -> None:
    with pytest.raises(UnknownEmbeddingModelError) as caught:
        get_embedder(model, dimension)
    assert isinstance(caught.value, PermanentError) and isinstance(caught.value, ValueError)
    assert caught.value.code == "unknown_embedding_model"


def test_importing_the_package_stays_light() -> None:
    code = (
        "import sys, shared.embeddings;"
        "e = shared.embeddings.get_embedder('hashing-32'); e.embed(['x']);"
        "shared.embeddings.get_embedder('openai:text-embedding-3-small');"
        "shared.embeddings.get_embedder('minilm');"
        "heavy = {'torch', 'numpy', 'openai', 'sentence_transformers', 'transformers'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    assert out.stdout.strip() == b"[]"
