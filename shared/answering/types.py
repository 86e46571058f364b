"""The values answering passes around: retrieved passages, citations, usage, history.

Retrieval (``shared.retrieval``) produces :class:`Passage` objects; a generator (see
``shared.answering.generators``) turns a question and numbered passages into text that
cites them as ``[n]``; citation checking maps each valid marker back to a
:class:`Citation`. Everything here is plain data, JSON-ready through ``to_json``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from shared.retrieval.types import Passage

__all__ = [
    "Citation",
    "Exchange",
    "GenerationRequest",
    "GenerationStream",
    "Generator",
    "Passage",
    "Support",
    "Usage",
]


MIN_OVERLAP = 0.5
"""Least share of a claim's content words a supporting passage contains."""


@dataclass(frozen=True)
class Support:
    """How well one passage supports the answer's sentences citing it.

    Attributes:
        overlap: Share of the claims' content words found in the passage (the lowest
            over the claims; 1.0 for a claim without content words).
        missing_numbers: The claims' numbers the passage does not contain, as written.
    """

    overlap: float
    missing_numbers: tuple[str, ...] = ()

    @property
    def supported(self) -> bool:
        """Enough words in common and no number missing."""
        return self.overlap >= MIN_OVERLAP and not self.missing_numbers

    def to_json(self) -> dict[str, Any]:
        """The support as a JSON object."""
        return {"overlap": self.overlap, "missing_numbers": list(self.missing_numbers)}


@dataclass(frozen=True)
class Citation:
    """A checked citation: marker ``[n]`` of the answer and the passage it points to."""

    n: int
    chunk_id: int
    document_id: str
    version_id: str
    kb_id: str
    filename: str
    title: str | None
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    score: float
    snippet: str
    support: Support | None = None

    @property
    def supported(self) -> bool:
        """Whether the cited passage supports the sentences citing it (unchecked: True)."""
        return self.support is None or self.support.supported

    def to_json(self) -> dict[str, Any]:
        """The citation as a JSON object (``supported`` and ``support`` once checked)."""
        body = asdict(self)
        body.pop("support")
        if self.support is not None:
            body["supported"] = self.supported
            body["support"] = self.support.to_json()
        return body


@dataclass(frozen=True)
class Usage:
    """Tokens a generation used (zero for the extractive answerer)."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        """The usage as a JSON object."""
        return asdict(self)


@dataclass(frozen=True)
class Exchange:
    """One earlier question and answer of the session (for follow-ups)."""

    question: str
    answer: str


@dataclass(frozen=True)
class GenerationRequest:
    """What a generator answers: the question and the passages numbered 1..n in order."""

    question: str
    passages: Sequence[Passage]
    history: Sequence[Exchange] = field(default_factory=tuple)


GeneratorKind = Literal["llm", "extractive"]


class GenerationStream(Protocol):
    """A generation in progress: iterate for text deltas; ``close()`` stops it early.

    ``usage`` is final once iteration has ended (or after ``close()``); ``included``
    holds the passage numbers the generator actually used (those that fit its context
    budget), the only ones its answer may cite.
    """

    usage: Usage
    included: tuple[int, ...]

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None:
        """Stop the answer early and release its connection."""
        ...


class Generator(Protocol):
    """Writes an answer that cites the request's passages as ``[n]``."""

    kind: GeneratorKind
    model: str

    def generate(self, request: GenerationRequest) -> GenerationStream:
        """Start generating; nothing is sent until the stream is iterated."""
        ...
