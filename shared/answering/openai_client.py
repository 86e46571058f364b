"""The OpenAI client of answering: one per configuration, its errors, one-shot completions.

The OpenAI settings (``OPENAI_API_KEY``, ``OPENAI_MODEL``, ``OPENAI_BASE_URL``, read
without Ragline's prefix as the ``openai`` client reads them) come from
:class:`~shared.config.Settings`. ``openai`` is imported on first use only: an
instance that never generates never pays for it.

Retries are the client's own (``max_retries``; it honours ``Retry-After`` and
``retry-after-ms`` up to two minutes). What still fails afterwards is raised as a
:class:`GenerationError` whose ``retryable`` flag says whether trying later may help;
the HTTP layer maps it to a status.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from shared.answering.types import Usage
from shared.errors import UpstreamError

if TYPE_CHECKING:
    from openai import OpenAI

    from shared.answering.prompt import ChatMessage
    from shared.config import Settings

DEFAULT_MODEL = "gpt-4o-mini"
"""The chat model when ``OPENAI_MODEL`` is unset."""


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


_client_lock = threading.Lock()
_clients: dict[tuple[str, str | None, float, int], OpenAI] = {}


def openai_configured(settings: Settings) -> bool:
    """Whether an OpenAI API key is configured (``OPENAI_API_KEY``)."""
    return bool(settings.openai_api_key.strip())


def openai_model(settings: Settings) -> str:
    """The chat model to use: ``OPENAI_MODEL`` or :data:`DEFAULT_MODEL`."""
    return settings.openai_model.strip() or DEFAULT_MODEL


def get_openai_client(
    settings: Settings,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
) -> OpenAI:
    """Return this process's ``openai.OpenAI`` client for a configuration, created once.

    One client (and so one connection pool) per configuration, shared by every
    request of the instance; creating one per request would redo TLS handshakes.

    Args:
        settings: This instance's settings (key, base URL, timeout, retries).
        api_key: Overrides ``OPENAI_API_KEY``.
        base_url: Overrides ``OPENAI_BASE_URL`` (unset: api.openai.com).
        timeout: Seconds to connect or between two bytes of a response; defaults to
            the ``openai_timeout_s`` setting.
        max_retries: The client's retries; defaults to ``openai_max_retries``.

    Returns:
        The shared client.

    Raises:
        GenerationError: No API key is configured.
    """
    timeout = settings.openai_timeout_s if timeout is None else timeout
    max_retries = settings.openai_max_retries if max_retries is None else max_retries
    key = api_key or settings.openai_api_key.strip()
    if not key:
        raise GenerationError("llm_not_configured", "OPENAI_API_KEY is not set", retryable=False)
    url = base_url or settings.openai_base_url.strip() or None
    cache_key = (key, url, float(timeout), max_retries)
    with _client_lock:
        client = _clients.get(cache_key)
        if client is None:
            from openai import OpenAI

            client = OpenAI(api_key=key, base_url=url, timeout=timeout, max_retries=max_retries)
            _clients[cache_key] = client
        return client


def close_openai_clients() -> None:
    """Close and forget the shared clients (tests that change the configuration)."""
    with _client_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


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


def usage_of(model: str, reported: Any) -> Usage:
    """The :class:`Usage` of a response's ``usage`` object, as the server reported it."""
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
        timeout: Override of the client's timeout for this call.
        max_retries: Override of the client's retry count for this call.

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
        usage_of(response.model or model, response.usage)
        if response.usage
        else Usage(model=response.model or model)
    )
    return Completion(
        text=text, usage=usage, finish_reason=choice.finish_reason if choice else None
    )
