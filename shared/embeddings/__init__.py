"""Embedding providers behind one interface, created lazily and cached per process.

``get_embedder("hashing-384")``, ``get_embedder("minilm")`` or
``get_embedder("openai:text-embedding-3-small", 512)``. Importing this package loads
no heavy dependency: torch/sentence-transformers and openai are imported only when an
embedder that needs them is created or used.
"""

from __future__ import annotations

import threading

from shared.embeddings.base import Embedder, l2_normalize
from shared.errors import PermanentError

__all__ = [
    "Embedder",
    "UnknownEmbeddingModelError",
    "clear_embedder_cache",
    "get_embedder",
    "l2_normalize",
]


class UnknownEmbeddingModelError(PermanentError, ValueError):
    """The model name or dimension is not one Ragline can embed with."""

    code = "unknown_embedding_model"


_lock = threading.Lock()
_cache: dict[tuple[str, int | None], Embedder] = {}


def get_embedder(model: str, dimension: int | None = None) -> Embedder:
    """Return this process's embedder for ``model``, creating it on first use.

    Args:
        model: ``"hashing-<dim>"`` (or ``"hashing"``), ``"minilm"``, or
            ``"openai:<model name>"``.
        dimension: Requested vector size. Optional where the name implies it; for
            OpenAI text-embedding-3-* models it shortens the vectors.

    Returns:
        A cached :class:`Embedder` (clients and models inside load lazily).

    Raises:
        UnknownEmbeddingModelError: Unknown model, or a dimension it cannot produce.
    """
    key = (model, dimension)
    with _lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = _create(model, dimension)
            _cache[key] = embedder
        return embedder


def clear_embedder_cache() -> None:
    """Forget every cached embedder (tests that change the environment use this)."""
    with _lock:
        _cache.clear()


def _create(model: str, dimension: int | None) -> Embedder:
    try:
        if model == "hashing" or model.startswith("hashing-"):
            from shared.embeddings.hashing import DEFAULT_DIMENSION, HashingEmbedder

            suffix = model.removeprefix("hashing").removeprefix("-")
            size = int(suffix) if suffix else (dimension or DEFAULT_DIMENSION)
            if dimension is not None and dimension != size:
                raise ValueError(f"{model} has dimension {size}, not {dimension}")
            return HashingEmbedder(size)
        if model == "minilm":
            from shared.embeddings.minilm import DIMENSION, MiniLMEmbedder

            if dimension not in (None, DIMENSION):
                raise ValueError(f"minilm has dimension {DIMENSION}, not {dimension}")
            return MiniLMEmbedder()
        if model.startswith("openai:"):
            from shared.config import get_settings
            from shared.embeddings.openai import EmbeddingLimits, OpenAIEmbedder

            settings = get_settings()
            limits = EmbeddingLimits(
                rpm=settings.embedding_rpm,
                tpm=settings.embedding_tpm,
                request_tokens=settings.embedding_request_tokens,
            )
            return OpenAIEmbedder(model, dimension, limits=limits)
    except ValueError as exc:
        raise UnknownEmbeddingModelError(f"cannot embed with {model!r}: {exc}") from exc
    raise UnknownEmbeddingModelError(
        f"unknown embedding model {model!r} (expected hashing-<dim>, minilm or openai:<name>)"
    )
