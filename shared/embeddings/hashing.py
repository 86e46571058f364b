"""A deterministic feature-hashing embedder: no model, no network, no numpy.

Meant for tests and the local stack's quick start. It captures lexical overlap only
(shared words and word pairs), which is enough to exercise retrieval end to end and to
rank an obviously related passage above an unrelated one.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from hashlib import blake2b
from itertools import pairwise

from shared.tokens import TokenCounter, get_counter
from shared.tracing import span

DEFAULT_DIMENSION = 384
MODEL_PREFIX = "hashing-"

# Letters/digits runs (Unicode-aware), lowercased first. Punctuation is not a feature.
_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1 << 16)
def _slot(feature: str, dimension: int) -> tuple[int, float]:
    """Bucket and sign of a feature: stable across processes, unlike ``hash()``."""
    digest = int.from_bytes(blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return digest % dimension, (1.0 if digest >> 63 else -1.0)


class HashingEmbedder:
    """Signed feature hashing of lowercase words and word bigrams, sublinear tf, L2 norm.

    Args:
        dimension: Vector length (``hashing-<dimension>``).
        counter: Token counter for sizing chunks; the shared WordPiece counter by
            default. The embedder itself has no input limit.
    """

    max_input_tokens = 8192
    max_input_bytes: int | None = None

    def __init__(self, dimension: int = DEFAULT_DIMENSION, counter: TokenCounter | None = None):
        if dimension < 8:
            raise ValueError("hashing dimension must be at least 8")
        self.dimension = dimension
        self.model = f"{MODEL_PREFIX}{dimension}"
        self.counter: TokenCounter = counter if counter is not None else get_counter()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed each text; a text without any word maps to the zero vector."""
        with span("ragline.embeddings.compute", texts=len(texts)):
            return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        words = _WORD.findall(text.lower())
        features = Counter(words)
        # "\x1f" cannot occur inside a \w+ token, so bigram keys never collide with words.
        features.update(f"{a}\x1f{b}" for a, b in pairwise(words))
        vector = [0.0] * self.dimension
        for feature, tf in features.items():
            index, sign = _slot(feature, self.dimension)
            # Sublinear tf: a word repeated 10 times is not 10 times as important.
            vector[index] += sign * (1.0 + math.log(tf))
        norm = math.sqrt(math.fsum(x * x for x in vector))
        if norm == 0.0:
            return vector
        return [x / norm for x in vector]
