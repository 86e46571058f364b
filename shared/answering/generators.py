"""Answer generators: OpenAI chat completions, or an offline extractive answerer.

:func:`get_generator` picks :class:`OpenAIGenerator` when ``OPENAI_API_KEY`` is set
and :class:`ExtractiveGenerator` otherwise, once per process. Both return a stream
(:class:`~shared.answering.types.GenerationStream`) that sends nothing until it is
iterated, yields text deltas whose ``[n]`` markers all point at passages the
generator was given (``stream.included``), and stops at ``close()``.

The OpenAI variables are read as the ``openai`` client reads them, without Ragline's
prefix: ``OPENAI_API_KEY``, ``OPENAI_MODEL`` (default ``gpt-4o-mini``) and
``OPENAI_BASE_URL`` (any OpenAI-compatible server). ``openai`` is imported on first
use only: an instance that never generates never pays for it.

Retries are the client's own (``max_retries``; it honours ``Retry-After`` and
``retry-after-ms`` up to two minutes). What still fails afterwards is raised as a
:class:`GenerationError` whose ``retryable`` flag tells the HTTP layer 503 from 502.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from shared.answering.citations import (
    CitationFilter,
    clip,
    split_sentences,
    terms,
    words,
)
from shared.answering.prompt import (
    ChatMessage,
    Prompt,
    TokenEstimator,
    build_prompt,
    estimate_tokens,
)
from shared.answering.types import (
    GenerationRequest,
    GenerationStream,
    Generator,
    GeneratorKind,
    Usage,
)
from shared.errors import UpstreamError

if TYPE_CHECKING:
    from openai import OpenAI, Stream
    from openai.types.chat import ChatCompletionChunk

DEFAULT_MODEL = "gpt-4o-mini"

EXTRACTIVE_LABEL = "Extractive answer (no language model configured)"
"""How every extractive answer starts, so nobody mistakes it for a model's answer."""

EXTRACTIVE_MODEL = "extractive"


class GenerationError(UpstreamError):
    """The language model could not produce an answer.

    Attributes:
        code: A short machine-readable reason, e.g. ``"llm_rate_limited"``.
        retryable: True when trying again later may succeed (rate limits, 5xx,
            timeouts, connection errors); False when the request or the deployment
            is at fault (4xx, bad credentials).
        retry_after: Seconds the provider asked to wait, if it said.
    """

    def __init__(
        self, code: str, message: str, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code, retryable=retryable)
        self.retry_after = retry_after


# -- the OpenAI client ----------------------------------------------------------------

_client_lock = threading.Lock()
_clients: dict[tuple[str, str | None, float, int], OpenAI] = {}


def openai_configured() -> bool:
    """Whether an OpenAI API key is configured (``OPENAI_API_KEY``)."""
    return bool(os.environ.get("OPENAI_API_KEY", "").strip())


def openai_model() -> str:
    """The chat model to use: ``OPENAI_MODEL`` or :data:`DEFAULT_MODEL`."""
    return os.environ.get("OPENAI_MODEL", "").strip() or DEFAULT_MODEL


def get_openai_client(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
) -> OpenAI:
    """Return this process's ``openai.OpenAI`` client, created on first use.

    One client (and so one connection pool) per configuration, shared by every
    request of the instance; creating one per request would redo TLS handshakes.

    Args:
        api_key: Defaults to ``OPENAI_API_KEY``.
        base_url: Defaults to ``OPENAI_BASE_URL`` (unset: api.openai.com).
        timeout: Seconds to connect or between two bytes of a response; defaults to
            the ``openai_timeout_s`` setting.
        max_retries: The client's retries; defaults to ``openai_max_retries``.

    Raises:
        GenerationError: No API key is configured.
    """
    if timeout is None or max_retries is None:
        from shared.config import get_settings

        settings = get_settings()
        timeout = settings.openai_timeout_s if timeout is None else timeout
        max_retries = settings.openai_max_retries if max_retries is None else max_retries
    key = api_key or os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise GenerationError("llm_not_configured", "OPENAI_API_KEY is not set", retryable=False)
    url = base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or None
    cache_key = (key, url, float(timeout), max_retries)
    with _client_lock:
        client = _clients.get(cache_key)
        if client is None:
            from openai import OpenAI

            client = OpenAI(api_key=key, base_url=url, timeout=timeout, max_retries=max_retries)
            _clients[cache_key] = client
        return client


def map_openai_error(error: Exception, attempts: int | None = None) -> GenerationError:
    """Translate an ``openai`` exception into a :class:`GenerationError`.

    Args:
        error: What the client raised (after its own retries).
        attempts: Requests made, for the message (None if unknown).
    """
    import openai

    # "Up to": the client skips retries the server forbids (e.g. Retry-After > 2 min).
    tried = f" after up to {attempts} attempts" if attempts and attempts > 1 else ""
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        from shared.embeddings.openai import parse_retry_after

        wait = parse_retry_after(error.response.headers)
        if status == 429:
            return GenerationError(
                "llm_rate_limited",
                f"the language model is rate limited (429){tried}: {error.message}",
                retryable=True,
                retry_after=wait,
            )
        if status >= 500 or status in (408, 409):
            return GenerationError(
                "llm_unavailable",
                f"the language model failed ({status}){tried}: {error.message}",
                retryable=True,
                retry_after=wait,
            )
        if status in (401, 403):
            return GenerationError(
                "llm_unauthorized",
                f"the language model refused the credentials ({status}): {error.message}",
                retryable=False,
            )
        return GenerationError(
            "llm_rejected",
            f"the language model rejected the request ({status}): {error.message}",
            retryable=False,
        )
    if isinstance(error, openai.APITimeoutError):
        return GenerationError(
            "llm_timeout", f"the language model timed out{tried}", retryable=True
        )
    if isinstance(error, openai.APIConnectionError):
        return GenerationError(
            "llm_unavailable",
            f"cannot reach the language model{tried}: {error.message}",
            retryable=True,
        )
    if isinstance(error, openai.APIError):  # an error event inside the stream
        return GenerationError(
            "llm_stream_error",
            f"the language model failed mid-answer: {error.message}",
            retryable=True,
        )
    return GenerationError("llm_error", f"the language model failed: {error}", retryable=True)


def _usage(model: str, reported: Any) -> Usage:
    return Usage(
        model=model,
        prompt_tokens=reported.prompt_tokens or 0,
        completion_tokens=reported.completion_tokens or 0,
        total_tokens=reported.total_tokens or 0,
    )


@dataclass(frozen=True)
class Completion:
    """The text and usage of a non-streaming chat completion."""

    text: str
    usage: Usage
    finish_reason: str | None


def complete_chat(
    client: OpenAI,
    model: str,
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int,
    temperature: float,
    timeout: float | None = None,
    max_retries: int | None = None,
) -> Completion:
    """Run one non-streaming chat completion (short tasks, e.g. query rewriting).

    Args:
        client: The ``openai.OpenAI`` client.
        model: The chat model.
        messages: The chat.
        max_tokens: Most tokens to generate.
        temperature: Sampling temperature.
        timeout, max_retries: Overrides of the client's settings for this call.

    Raises:
        GenerationError: The call failed after the client's retries.
    """
    import openai

    options: dict[str, Any] = {}
    if timeout is not None:
        options["timeout"] = timeout
    if max_retries is not None:
        options["max_retries"] = max_retries
    scoped = client.with_options(**options) if options else client
    try:
        response = scoped.chat.completions.create(
            model=model,
            messages=cast(Any, list(messages)),
            max_tokens=max_tokens,
            temperature=temperature,
        )
    except openai.OpenAIError as error:
        raise map_openai_error(error) from error
    choice = response.choices[0] if response.choices else None
    text = (choice.message.content or "") if choice is not None else ""
    usage = (
        _usage(response.model or model, response.usage)
        if response.usage
        else Usage(model=response.model or model)
    )
    return Completion(
        text=text, usage=usage, finish_reason=choice.finish_reason if choice else None
    )


# -- OpenAI streaming answers -----------------------------------------------------------


class OpenAIStream:
    """A streaming chat completion; see :class:`~shared.answering.types.GenerationStream`.

    The deltas it yields have already been through a :class:`CitationFilter` over
    ``included``: a marker the model invents never reaches the caller.

    Attributes:
        usage: Token usage as the server reported it in the final chunk (zeros until
            then, and if the generation was closed early or the server reports none).
        included: The passage numbers the prompt gave the model.
        prompt: The prompt sent.
        finish_reason: Why the model stopped (``"stop"``, ``"length"``, ...), once known.
    """

    def __init__(self, generator: OpenAIGenerator, prompt: Prompt) -> None:
        self.prompt = prompt
        self.included = prompt.included
        self.usage = Usage(model=generator.model)
        self.finish_reason: str | None = None
        self._generator = generator
        self._lock = threading.Lock()
        self._stream: Stream[ChatCompletionChunk] | None = None
        self._closed = False
        self._started = False

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            if self._started:
                raise RuntimeError("a generation stream can be iterated only once")
            self._started = True
        return self._deltas()

    def close(self) -> None:
        """Stop generating: closes the HTTP response, so the server stops too."""
        with self._lock:
            self._closed = True
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def _open(self) -> Stream[ChatCompletionChunk] | None:
        import openai

        generator = self._generator
        try:
            stream = generator.client.chat.completions.create(
                model=generator.model,
                messages=cast(Any, self.prompt.messages),
                max_tokens=generator.max_tokens,
                temperature=generator.temperature,
                stream=True,
                # The final chunk then carries the token usage of the whole request.
                stream_options={"include_usage": True},
            )
        except openai.OpenAIError as error:
            raise map_openai_error(error, generator.max_retries + 1) from error
        with self._lock:
            if self._closed:  # closed while the request was in flight
                stream.close()
                return None
            self._stream = stream
        return stream

    def _deltas(self) -> Iterator[str]:
        if self._closed:
            return
        import openai

        stream = self._open()
        if stream is None:
            return
        markers = CitationFilter(self.included)
        try:
            for chunk in stream:
                if chunk.usage is not None:
                    self.usage = _usage(chunk.model or self.usage.model, chunk.usage)
                for choice in chunk.choices:
                    if choice.finish_reason:
                        self.finish_reason = choice.finish_reason
                    text = markers.feed(choice.delta.content or "") if choice.delta else ""
                    if text:
                        yield text
                if self._closed:
                    return
            tail = markers.flush()
            if tail:
                yield tail
        except Exception as error:
            if self._closed:  # reading a response that close() shut: a normal stop
                return
            if isinstance(error, openai.OpenAIError):
                raise map_openai_error(error) from error
            raise
        finally:
            stream.close()


class OpenAIGenerator:
    """Grounded answers from OpenAI chat completions (or any compatible server).

    Args:
        model: The chat model; defaults to ``OPENAI_MODEL`` or ``gpt-4o-mini``.
        client: A ready ``openai.OpenAI`` client; by default the process's shared one
            (:func:`get_openai_client`), created on first use.
        api_key, base_url, timeout, max_retries: For that shared client (see
            :func:`get_openai_client`).
        max_tokens: Most tokens per answer (``answer_max_tokens``).
        temperature: Sampling temperature (``answer_temperature``).
        max_context_tokens: The prompt's budget (``answer_context_tokens``).
        estimator: Token estimator for the budget.
    """

    kind: GeneratorKind = "llm"

    def __init__(
        self,
        model: str | None = None,
        *,
        client: OpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        max_context_tokens: int | None = None,
        estimator: TokenEstimator = estimate_tokens,
    ) -> None:
        from shared.config import get_settings

        settings = get_settings()
        self.model = model or openai_model()
        self.max_tokens = max_tokens if max_tokens is not None else settings.answer_max_tokens
        self.temperature = temperature if temperature is not None else settings.answer_temperature
        self.max_context_tokens = (
            max_context_tokens if max_context_tokens is not None else settings.answer_context_tokens
        )
        self.max_retries = max_retries if max_retries is not None else settings.openai_max_retries
        self.estimator = estimator
        self._client = client
        self._client_options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": self.max_retries,
        }

    @property
    def client(self) -> OpenAI:
        """The ``openai.OpenAI`` client (the shared one unless one was passed)."""
        if self._client is None:
            self._client = get_openai_client(**self._client_options)
        return self._client

    def generate(self, request: GenerationRequest) -> OpenAIStream:
        """Build the prompt now; start the streaming completion on first iteration.

        Raises:
            LimitExceededError: The question alone exceeds the context budget.
        """
        prompt = build_prompt(
            request, max_context_tokens=self.max_context_tokens, estimator=self.estimator
        )
        return OpenAIStream(self, prompt)


# -- the extractive answerer ------------------------------------------------------------

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


# -- choosing a generator ----------------------------------------------------------------

_generator_lock = threading.Lock()
_generator: Generator | None = None


def get_generator() -> Generator:
    """Return this process's generator: OpenAI if ``OPENAI_API_KEY`` is set, else extractive.

    Decided once per process (the environment does not change in a running instance).
    """
    global _generator
    with _generator_lock:
        if _generator is None:
            _generator = OpenAIGenerator() if openai_configured() else ExtractiveGenerator()
        return _generator


def clear_generator_cache() -> None:
    """Forget the chosen generator and the shared OpenAI clients (for tests)."""
    global _generator
    with _generator_lock:
        _generator = None
    with _client_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


# Both stream classes satisfy the protocol; keep mypy checking that they still do.
if TYPE_CHECKING:
    _streams: tuple[type[GenerationStream], ...] = (OpenAIStream, TextStream)
    _generators: tuple[type[Generator], ...] = (OpenAIGenerator, ExtractiveGenerator)
