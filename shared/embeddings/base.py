"""The embedder interface every provider implements, and small shared helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from shared.tokens import TokenCounter


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors (compare them with cosine / inner product).

    Attributes:
        model: The model name as stored on a knowledge base, e.g. ``"hashing-384"``,
            ``"minilm"`` or ``"openai:text-embedding-3-small"``.
        dimension: Length of every vector.
        max_input_tokens: Most tokens of one input, in ``counter`` units and without
            special tokens. Chunks must not exceed it.
        max_input_bytes: If not None, most UTF-8 bytes of one input: a *provable*
            bound where ``counter`` only estimates the model's own tokenizer (OpenAI).
            Pass it to the chunker as ``hard_max_bytes``.
        counter: The offline token counter that sizes inputs for this model.
    """

    model: str
    dimension: int
    max_input_tokens: int
    max_input_bytes: int | None
    counter: TokenCounter

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in order; an empty sequence gives an empty list.

        Raises:
            shared.errors.PermanentError: An input can never be embedded (too long).
            shared.errors.TransientError: The provider failed in a retryable way.
        """
        ...


@runtime_checkable
class RateLimitedEmbedder(Embedder, Protocol):
    """An embedder behind a provider's per-minute limits, billed per request and token.

    Its callers fill each request from every version waiting (the embed step), so a
    thousand small documents cost the requests their tokens need, not one each.

    Attributes:
        request_tokens: Most tokens one request may carry under the limits.
    """

    request_tokens: int

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return each text's tokens as the provider's limits count them."""
        ...

    def reserve(self, tokens: int) -> AbstractContextManager[None]:
        """Wait for this instance's turn to send a request of ``tokens``, and hold it."""
        ...


def l2_normalize(vector: Sequence[float]) -> list[float]:
    """Return ``vector`` scaled to unit length (a zero vector is returned unchanged)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return [float(x) for x in vector]
    return [x / norm for x in vector]
