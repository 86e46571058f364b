"""The offline answerer: quotes the passages' sentences that best match the question.

Used when no language model is configured. Every answer starts with
:data:`EXTRACTIVE_LABEL`, so nobody mistakes it for a model's answer.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from shared.answering.citations import clip, split_sentences, terms, words
from shared.answering.types import GenerationRequest, GeneratorKind, Usage

EXTRACTIVE_LABEL = "Extractive answer (no language model configured)"
"""How every extractive answer starts, so nobody mistakes it for a model's answer."""

EXTRACTIVE_MODEL = "extractive"

# BM25 parameters (the usual defaults) and the penalty per retrieval rank: a sentence
# of passage n scores 1 / (1 + RANK_DECAY * (n - 1)) of the same sentence in passage 1.
_K1, _B = 1.2, 0.75
RANK_DECAY = 0.15


@dataclass(frozen=True)
class _Sentence:
    number: int
    position: int
    text: str
    terms: Counter[str]


class TextStream:
    """A finished text streamed in small pieces (for the extractive answerer).

    Attributes:
        usage: Zero tokens, model ``"extractive"``.
        included: The passage numbers the answerer read.
    """

    def __init__(self, text: str, included: tuple[int, ...], usage: Usage) -> None:
        self.text = text
        self.included = included
        self.usage = usage
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        # Word by word (with the space before each), so markers like "[2]" stay whole.
        for piece in re.findall(r"\s*\S+", self.text):
            if self._closed:
                return
            yield piece

    def close(self) -> None:
        """Stop the stream: iteration ends at the next piece."""
        self._closed = True


class ExtractiveGenerator:
    """An offline answerer: quotes the passages' sentences that best match the question.

    Sentences are scored with BM25 over the passages' sentences (stopwords removed,
    light stemming), discounted by the passage's retrieval rank. The best few are
    quoted, each followed by its ``[n]``; the answer starts with
    :data:`EXTRACTIVE_LABEL`. With no matching sentence it says that the documents
    do not appear to contain the answer.

    Args:
        max_quotes: Most sentences quoted.
        per_passage: Most sentences quoted from one passage.
        quote_chars: Longest quote; longer sentences are cut at a word boundary.
    """

    kind: GeneratorKind = "extractive"
    model = EXTRACTIVE_MODEL

    def __init__(
        self, *, max_quotes: int = 3, per_passage: int = 2, quote_chars: int = 300
    ) -> None:
        self.max_quotes = max_quotes
        self.per_passage = per_passage
        self.quote_chars = quote_chars

    def generate(self, request: GenerationRequest) -> TextStream:
        """Compose the answer (no I/O) and return it as a stream of small pieces."""
        included = tuple(range(1, len(request.passages) + 1))
        return TextStream(self.compose(request), included, Usage(model=EXTRACTIVE_MODEL))

    def compose(self, request: GenerationRequest) -> str:
        """Return the whole extractive answer for ``request``."""
        quotes = self.select(request)
        if not quotes:
            return (
                f"{EXTRACTIVE_LABEL}: the documents do not appear to contain an answer "
                "to this question."
            )
        lines = [f'- "{clip(text, self.quote_chars)}" [{number}]' for number, text in quotes]
        return f"{EXTRACTIVE_LABEL}. The most relevant passages say:\n\n" + "\n".join(lines)

    def select(self, request: GenerationRequest) -> list[tuple[int, str]]:
        """Return the ``(passage number, sentence)`` pairs to quote, best first."""
        query = set(terms(request.question))
        sentences = _sentences(request)
        if not query or not sentences:
            return []
        frequency: Counter[str] = Counter()
        for sentence in sentences:
            frequency.update(set(sentence.terms) & query)
        total = len(sentences)
        average = sum(sum(s.terms.values()) for s in sentences) / total or 1.0
        scored: list[tuple[float, _Sentence]] = []
        for sentence in sentences:
            length = sum(sentence.terms.values())
            score = 0.0
            for term in query & set(sentence.terms):
                idf = math.log(1 + (total - frequency[term] + 0.5) / (frequency[term] + 0.5))
                tf = sentence.terms[term]
                score += idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / average))
            if score > 0:
                scored.append((score / (1 + RANK_DECAY * (sentence.number - 1)), sentence))
        scored.sort(key=lambda item: (-item[0], item[1].number, item[1].position))
        picked: list[tuple[int, str]] = []
        per_passage: Counter[int] = Counter()
        seen: set[str] = set()
        for _, sentence in scored:
            key = " ".join(sentence.text.lower().split())
            if per_passage[sentence.number] >= self.per_passage or key in seen:
                continue
            picked.append((sentence.number, sentence.text))
            per_passage[sentence.number] += 1
            seen.add(key)
            if len(picked) == self.max_quotes:
                break
        return picked


def _sentences(request: GenerationRequest) -> list[_Sentence]:
    """Every sentence of the passages worth quoting (three words or more)."""
    found = []
    for number, passage in enumerate(request.passages, start=1):
        for position, (start, end) in enumerate(split_sentences(passage.text)):
            text = " ".join(passage.text[start:end].split())
            if len(words(text)) >= 3:
                found.append(_Sentence(number, position, text, Counter(terms(text))))
    return found
