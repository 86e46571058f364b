"""Grounded answers streamed from OpenAI chat completions (or any compatible server).

:class:`OpenAIGenerator` builds the prompt within the context budget and returns an
:class:`OpenAIStream` that sends nothing until it is iterated, yields text deltas whose
``[n]`` markers all point at passages it was given, and stops at ``close()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from shared.answering.citations import CitationFilter
from shared.answering.openai_client import (
    get_openai_client,
    map_openai_error,
    openai_model,
    usage_of,
)
from shared.answering.prompt import Prompt, build_prompt
from shared.answering.token_estimate import TokenEstimator, estimate_tokens
from shared.answering.types import GenerationRequest, GeneratorKind, Usage

if TYPE_CHECKING:
    from openai import OpenAI, Stream
    from openai.types.chat import ChatCompletionChunk

    from shared.config import Settings


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

    def _texts_of(self, chunk: ChatCompletionChunk, markers: CitationFilter) -> Iterator[str]:
        """The answer text one streamed chunk adds; records its usage and finish reason."""
        if chunk.usage is not None:
            self.usage = usage_of(chunk.model or self.usage.model, chunk.usage)
        for choice in chunk.choices:
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            text = markers.feed(choice.delta.content or "") if choice.delta else ""
            if text:
                yield text

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
                yield from self._texts_of(chunk, markers)
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
        settings: This instance's settings: the OpenAI configuration and the defaults
            of everything below.
        model: The chat model; defaults to ``OPENAI_MODEL`` or ``gpt-4o-mini``.
        client: A ready ``openai.OpenAI`` client; by default the process's shared one
            (:func:`get_openai_client`), created on first use.
        api_key, base_url, timeout, max_retries: For that shared client (see
            :func:`get_openai_client`).
        max_tokens: Most tokens per answer (``answer_max_tokens``).
        temperature: Sampling temperature (``answer_temperature``).
        max_context_tokens: The prompt's budget (``answer_context_tokens``); the
            history it includes is ``answer_history_exchanges``.
        estimator: Token estimator for the budget.
    """

    kind: GeneratorKind = "llm"

    def __init__(
        self,
        settings: Settings,
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
        self.settings = settings
        self.model = model or openai_model(settings)
        self.max_tokens = max_tokens if max_tokens is not None else settings.answer_max_tokens
        self.temperature = temperature if temperature is not None else settings.answer_temperature
        self.max_context_tokens = (
            max_context_tokens if max_context_tokens is not None else settings.answer_context_tokens
        )
        self.max_history = settings.answer_history_exchanges
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
            self._client = get_openai_client(self.settings, **self._client_options)
        return self._client

    def generate(self, request: GenerationRequest) -> OpenAIStream:
        """Build the prompt now; start the streaming completion on first iteration.

        Raises:
            LimitExceededError: The question alone exceeds the context budget.
        """
        prompt = build_prompt(
            request,
            max_context_tokens=self.max_context_tokens,
            estimator=self.estimator,
            max_history=self.max_history,
        )
        return OpenAIStream(self, prompt)
