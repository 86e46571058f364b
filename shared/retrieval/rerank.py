"""Reranking the fused candidates, behind one interface, off by default.

Two rerankers:

* :class:`ChatReranker`: the configured OpenAI-compatible chat model as a *listwise*
  reranker: the question and the numbered candidates in one prompt, the model answers
  with the numbers, most relevant first.
* :class:`EndpointReranker`: a ``/rerank`` endpoint of a hosted cross-encoder in the
  shape Cohere, Jina and Hugging Face TEI share: ``{"query", "documents" (or "texts"),
  "top_n"}`` in, ``results: [{index, relevance_score}]`` (or a bare list of
  ``{index, score}``) out.

A reranker only reorders: anything it fails at (a timeout, an error status, an answer
that is not a ranking of the candidates) leaves the fused order as it was, never an
error, since the fused order is already a good answer. Timeouts are strict and there
are no retries: a reranker sits in front of every answer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.retrieval.types import Passage

if TYPE_CHECKING:
    from openai import OpenAI

    from shared.config import Settings

log = logging.getLogger(__name__)

# Characters of each candidate shown to a chat model: enough to judge relevance, and
# 20 candidates stay well inside a small model's context.
CHAT_PASSAGE_CHARS = 1200
_NUMBER = re.compile(r"\d+")


class Reranker(Protocol):
    """Orders candidates by relevance to a query."""

    def rank(self, query: str, texts: Sequence[str]) -> list[int]:
        """Indices into ``texts``, most relevant first (may leave some out).

        Raises:
            Exception: Anything; callers fall back to the order they had.
        """
        ...


def merged_order(ranked: Sequence[int], count: int) -> list[int]:
    """A full order of ``count`` candidates: ``ranked`` (valid, first mention) then the rest.

    Raises:
        ValueError: ``ranked`` names no valid candidate (not a ranking at all).
    """
    seen: dict[int, None] = {}
    for index in ranked:
        if 0 <= index < count:
            seen.setdefault(index, None)
    if not seen:
        raise ValueError("the reranker named no candidate")
    return [*seen, *(i for i in range(count) if i not in seen)]


def rerank_passages(
    reranker: Reranker | None, query: str, passages: Sequence[Passage], top_k: int
) -> tuple[list[Passage], bool]:
    """The ``top_k`` best of ``passages`` as ``reranker`` orders them, else as fused.

    Args:
        reranker: The reranker (None: reranking is off).
        query: The question.
        passages: Candidates in fused order.
        top_k: Passages to keep.

    Returns:
        The passages kept, and whether the reranker's order was used.
    """
    if reranker is None or len(passages) < 2:
        return list(passages[:top_k]), False
    try:
        order = merged_order(reranker.rank(query, [p.text for p in passages]), len(passages))
    except Exception as error:  # any failure keeps the fused order
        log.warning("reranking failed, keeping the fused order: %s", error)
        return list(passages[:top_k]), False
    return [passages[i] for i in order[:top_k]], True


def ranking_prompt(query: str, texts: Sequence[str]) -> str:
    """The listwise prompt: the question, then each candidate as ``[n] text``."""
    numbered = "\n\n".join(
        f"[{n}] {' '.join(text.split())[:CHAT_PASSAGE_CHARS]}" for n, text in enumerate(texts, 1)
    )
    return (
        f"Question: {query}\n\nPassages:\n\n{numbered}\n\n"
        "Rank the passages by how well they help answer the question. Reply with the"
        " passage numbers only, most relevant first, separated by commas (e.g. 3, 1, 2)."
    )


@dataclass
class ChatReranker:
    """The chat model as a listwise reranker.

    Attributes:
        api_key, base_url, model: The OpenAI-compatible server and model.
        timeout_s: Seconds for the whole call (no retries).
    """

    api_key: str
    base_url: str
    model: str
    timeout_s: float
    _client: OpenAI | None = None

    def rank(self, query: str, texts: Sequence[str]) -> list[int]:
        """Indices into ``texts`` as the model ranks them (1-based numbers in its reply)."""
        response = self._openai().chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": "You rank passages by relevance. Be terse."},
                {"role": "user", "content": ranking_prompt(query, texts)},
            ],
            temperature=0,
            max_tokens=8 + 4 * len(texts),
        )
        reply = response.choices[0].message.content or ""
        return [int(number) - 1 for number in _NUMBER.findall(reply)]

    def _openai(self) -> OpenAI:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(
                api_key=self.api_key,
                base_url=self.base_url or None,
                timeout=self.timeout_s,
                max_retries=0,
            )
        return self._client


@dataclass(frozen=True)
class EndpointReranker:
    """A hosted cross-encoder's ``/rerank`` endpoint (Cohere, Jina, TEI request shape).

    Attributes:
        url: The endpoint, e.g. ``https://api.cohere.com/v2/rerank``.
        model: The model name sent as ``model`` (empty: not sent, as TEI expects).
        api_key: Sent as a bearer token (empty: none).
        timeout_s: Seconds for the whole call (no retries).
        texts_field: ``documents`` (Cohere, Jina) or ``texts`` (TEI).
    """

    url: str
    model: str
    api_key: str
    timeout_s: float
    texts_field: str = "documents"

    def rank(self, query: str, texts: Sequence[str]) -> list[int]:
        """Indices into ``texts`` by the endpoint's relevance scores, best first."""
        body: dict[str, Any] = {"query": query, self.texts_field: list(texts), "top_n": len(texts)}
        if self.model:
            body["model"] = self.model
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            payload = json.loads(response.read())
        results: list[dict[str, Any]] = payload["results"] if isinstance(payload, dict) else payload
        scored = [
            (
                float(item["relevance_score"] if "relevance_score" in item else item["score"]),
                int(item["index"]),
            )
            for item in results
        ]
        return [index for _, index in sorted(scored, key=lambda pair: -pair[0])]


_lock = threading.Lock()
_rerankers: dict[tuple[Any, ...], Reranker] = {}


def get_reranker(settings: Settings) -> Reranker | None:
    """This instance's reranker for ``settings`` (created once), or None when off.

    Args:
        settings: ``rerank`` (``off``, ``llm`` or ``endpoint``) and its options.
    """
    mode = settings.rerank
    if mode == "off":
        return None
    key = (
        mode,
        settings.rerank_url,
        settings.rerank_model,
        settings.rerank_timeout_s,
        settings.rerank_texts_field,
        settings.openai_base_url,
        settings.openai_model,
    )
    with _lock:
        found = _rerankers.get(key)
        if found is None:
            found = _build(settings)
            _rerankers[key] = found
        return found


def _build(settings: Settings) -> Reranker:
    if settings.rerank == "llm":
        return ChatReranker(
            api_key=settings.openai_api_key.strip(),
            base_url=settings.openai_base_url.strip(),
            model=settings.rerank_model.strip() or settings.openai_model.strip() or "gpt-4o-mini",
            timeout_s=settings.rerank_timeout_s,
        )
    return EndpointReranker(
        url=settings.rerank_url,
        model=settings.rerank_model,
        api_key=settings.rerank_api_key,
        timeout_s=settings.rerank_timeout_s,
        texts_field=settings.rerank_texts_field,
    )
