"""OpenAI embeddings through the official ``openai`` client, batched and retried.

Requests respect the API's limits: at most 2,048 inputs and 300,000 tokens per
request (or the deployment's smaller ``embedding_request_tokens``), 8,191 tokens per
input. Each input is validated against its provable bound,
:func:`shared.tokens.utf8_bound` (UTF-8 bytes); requests are packed by the exact
cl100k_base counts (:func:`shared.tokens.openai_token_counts`), so they are as full as
the limits allow: the fewest requests for the inputs given.

A :class:`~shared.embeddings.pacer.RatePacer` keeps the instance inside its share of
the requests and tokens per minute (``embedding_rpm``, ``embedding_tpm``), so a lone
instance draws no 429. The client's own retries are disabled: this module retries
408/409/429/5xx and connection errors itself, waiting exactly the server's
``Retry-After``/``retry-after-ms`` when given (exponential backoff with jitter
otherwise), then raises :class:`~shared.errors.TransientError` so the platform retries
the task later. Other 4xx responses are permanent. :attr:`OpenAIEmbedder.stats` counts
requests, retries and tokens.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from shared.embeddings.base import l2_normalize
from shared.embeddings.pacer import RatePacer, shared_pacer
from shared.errors import LimitExceededError, PermanentError, TransientError
from shared.tokens import TokenCounter, get_counter, openai_token_counts, utf8_bound

if TYPE_CHECKING:
    from openai import OpenAI

MODEL_PREFIX = "openai:"
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_INPUT_TOKENS = 8191

# Output sizes of the known models; text-embedding-3-* can shorten theirs.
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_FIXED_DIMENSION_MODELS = frozenset({"text-embedding-ada-002"})
_RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class EmbeddingLimits:
    """The provider's rate limits as this instance may use them.

    Attributes:
        rpm: Requests per minute.
        tpm: Tokens per minute.
        request_tokens: Most tokens in one request (the API's cap is 300,000).
    """

    rpm: int
    tpm: int
    request_tokens: int = MAX_TOKENS_PER_REQUEST

    @property
    def tokens_per_request(self) -> int:
        """The largest request these limits admit: a request over the minute's budget never fits."""
        return max(1, min(MAX_TOKENS_PER_REQUEST, self.request_tokens, self.tpm))


@dataclass
class EmbedderStats:
    """What an embedder sent, for benchmarks and logs.

    Attributes:
        requests: Requests sent, retries included.
        retries: Requests sent again after a failure (429s and others).
        rate_limited: Responses that were 429.
        tokens: Tokens of the requests that succeeded (cl100k, or the byte bound).
        inputs: Inputs embedded.
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    tokens: int = 0
    inputs: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one request before handing the failure to the platform.

    Attributes:
        max_attempts: Requests in total (first try included).
        base_delay: Backoff before the second attempt, in seconds; doubles after each.
        max_delay: Cap of the exponential backoff, in seconds.
        max_retry_after: Longest server-requested wait honoured in-process; a longer
            ``Retry-After`` raises :class:`TransientError` at once (the task queue
            waits more cheaply than a running function).
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt number ``attempt`` (1-based): "equal jitter"."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked to wait, from ``retry-after-ms`` or ``Retry-After``.

    Args:
        headers: Response headers (case-insensitive mapping, as httpx gives them).
        now: Current UNIX time, for HTTP-date values (defaults to the clock).

    Returns:
        A non-negative delay, or None if no header is present or parseable.
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            millis = float(value)
        except ValueError:
            millis = math.nan
        if math.isfinite(millis) and millis >= 0:
            return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now if now is not None else time.time()
        return max(0.0, when.timestamp() - current)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def plan_batches(
    texts: Sequence[str],
    *,
    max_inputs: int = MAX_INPUTS_PER_REQUEST,
    max_tokens: int = MAX_TOKENS_PER_REQUEST,
    max_input_tokens: int = MAX_INPUT_TOKENS,
    counts: Sequence[int] | None = None,
) -> Iterator[tuple[int, int]]:
    """Split ``texts`` into consecutive ``(start, end)`` ranges, one per request.

    Each range holds at most ``max_inputs`` texts whose token counts (``counts``, else
    the :func:`utf8_bound` of each) sum to at most ``max_tokens``. Ranges are filled
    greedily in order, which for consecutive ranges gives the fewest requests.

    Raises:
        LimitExceededError: A text alone exceeds ``max_input_tokens`` bytes, so it
            cannot be proven to fit the model (the chunker never produces one).
        PermanentError: A text is empty (the API rejects empty inputs).
    """
    start, budget = 0, 0
    for index, text in enumerate(texts):
        size = utf8_bound(text)
        if size == 0:
            raise PermanentError(f"input {index} is empty", code="empty_input")
        if size > max_input_tokens:
            raise LimitExceededError(
                f"input {index} has {size} UTF-8 bytes; more than {max_input_tokens} "
                "cannot be proven to fit the model's input limit"
            )
        cost = counts[index] if counts is not None else size
        if index > start and (index - start >= max_inputs or budget + cost > max_tokens):
            yield start, index
            start, budget = index, 0
        budget += cost
    if start < len(texts):
        yield start, len(texts)


class OpenAIEmbedder:
    """Embeddings from an OpenAI(-compatible) ``/v1/embeddings`` endpoint.

    Args:
        name: The API model name, e.g. ``"text-embedding-3-small"`` (an
            ``"openai:"`` prefix is accepted and stripped).
        dimension: Output size; sent as ``dimensions`` when given (text-embedding-3-*
            only). Required for models this module does not know.
        api_key: API key; defaults to ``OPENAI_API_KEY``.
        base_url: API base URL; defaults to ``OPENAI_BASE_URL`` or api.openai.com.
        client: A ready ``openai.OpenAI`` client (its retries should be off).
        timeout: Seconds per request.
        retry: The retry policy.
        counter: Token counter for sizing chunks (WordPiece; an estimate here, the
            byte bound in :attr:`max_input_bytes` is the guarantee).
        sleep: Called with each backoff delay (tests pass a recorder).
        seed: Seed of the jitter's random source, for reproducible tests.
        limits: The rate limits this instance keeps to; None: no pacing, and requests
            as large as the API allows.
        pacer: A ready pacer (tests pass one with their clock); made from ``limits``
            when not given.
    """

    max_input_tokens = MAX_INPUT_TOKENS
    max_input_bytes: int | None = MAX_INPUT_TOKENS

    def __init__(
        self,
        name: str,
        dimension: int | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: OpenAI | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        counter: TokenCounter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        limits: EmbeddingLimits | None = None,
        pacer: RatePacer | None = None,
    ) -> None:
        name = name.removeprefix(MODEL_PREFIX)
        if not name:
            raise ValueError("an OpenAI embedding model name is required")
        native = NATIVE_DIMENSIONS.get(name)
        if dimension is None and native is None:
            raise ValueError(f"dimension is required for the unknown OpenAI model {name!r}")
        if name in _FIXED_DIMENSION_MODELS and dimension not in (None, native):
            raise ValueError(f"{name} only produces {native}-dimensional vectors")
        self.name = name
        self.model = f"{MODEL_PREFIX}{name}"
        self.dimension: int = dimension if dimension is not None else native  # type: ignore[assignment]
        self._send_dimensions = dimension is not None and name not in _FIXED_DIMENSION_MODELS
        self.counter: TokenCounter = counter if counter is not None else get_counter()
        self.retry = retry or RetryPolicy()
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._client = client
        self._client_lock = threading.Lock()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self.request_tokens = (
            limits.tokens_per_request if limits is not None else MAX_TOKENS_PER_REQUEST
        )
        if pacer is None and limits is not None:
            pacer = shared_pacer(name, limits.rpm, limits.tpm, burst=self.request_tokens)
        self.pacer = pacer
        self.stats = EmbedderStats()
        self._stats_lock = threading.Lock()

    @property
    def client(self) -> OpenAI:
        """The ``openai.OpenAI`` client, created on first use with retries disabled."""
        with self._client_lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(
                    api_key=self._api_key,
                    base_url=self._base_url,
                    max_retries=0,  # retries are ours: Retry-After, jitter, error mapping
                    timeout=self._timeout,
                )
            return self._client

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return each text's tokens as the provider's rate limits count them."""
        return openai_token_counts(texts)

    def reserve(self, tokens: int) -> AbstractContextManager[None]:
        """Wait for the instance's turn to send a request of ``tokens`` (see the pacer)."""
        if self.pacer is None:
            return nullcontext()
        return self.pacer.reserve(tokens)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in as few requests as the API limits allow.

        Raises:
            LimitExceededError: An input is over the provable size limit.
            PermanentError: An input is empty, or the API rejected a request (4xx).
            TransientError: Retries ran out on 408/409/429/5xx or connection errors.
        """
        counts = self.count_tokens(texts)
        # Validates every input before any request.
        batches = list(plan_batches(texts, max_tokens=self.request_tokens, counts=counts))
        vectors: list[list[float]] = []
        for start, end in batches:
            tokens = sum(counts[start:end])
            sent = self.pacer.acquire(tokens) if self.pacer is not None else None
            try:
                vectors.extend(self._request(texts[start:end]))
            finally:
                if self.pacer is not None and sent is not None:
                    self.pacer.finished(sent)
            with self._stats_lock:
                self.stats.tokens += tokens
                self.stats.inputs += end - start
        return vectors

    def _count(self, *, retry: bool) -> None:
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.retries += int(retry)

    def _request(self, batch: Sequence[str]) -> list[list[float]]:
        import openai

        extra: dict[str, Any] = {"dimensions": self.dimension} if self._send_dimensions else {}
        last_error: Exception | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            wait: float | None = None
            self._count(retry=attempt > 1)
            try:
                response = self.client.embeddings.create(
                    model=self.name, input=list(batch), encoding_format="float", **extra
                )
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in (401, 403):
                    # A missing or revoked key is the deployment's fault, not the
                    # document's: retry (and dead-letter) rather than fail it for good.
                    raise TransientError(
                        f"OpenAI refused the credentials ({status}): {exc.message}"
                    ) from exc
                if status < 500 and status not in _RETRYABLE_STATUS:
                    raise PermanentError(
                        f"OpenAI rejected the embeddings request ({status}): {exc.message}",
                        code="embedding_rejected",
                    ) from exc
                last_error = exc
                wait = parse_retry_after(exc.response.headers)
                if status == 429:
                    with self._stats_lock:
                        self.stats.rate_limited += 1
            except (openai.APIConnectionError, openai.APIResponseValidationError) as exc:
                last_error = exc
            else:
                return self._vectors(response.data, len(batch))
            if attempt == self.retry.max_attempts:
                break
            if wait is not None and wait > self.retry.max_retry_after:
                raise TransientError(
                    f"OpenAI asked to retry after {wait:.0f}s: {last_error}"
                ) from last_error
            if wait is not None and self.pacer is not None:
                self.pacer.hold(wait)  # the instance's next requests wait too
            self._sleep(wait if wait is not None else self.retry.backoff(attempt, self._rng))
        raise TransientError(
            f"OpenAI embeddings failed after {self.retry.max_attempts} attempts: {last_error}"
        ) from last_error

    def _vectors(self, data: Sequence[Any], expected: int) -> list[list[float]]:
        if len(data) != expected:
            raise TransientError(f"OpenAI returned {len(data)} embeddings for {expected} inputs")
        rows = sorted(data, key=lambda item: item.index)
        vectors = []
        for row in rows:
            if len(row.embedding) != self.dimension:
                raise PermanentError(
                    f"{self.model} returned {len(row.embedding)} dimensions, "
                    f"expected {self.dimension}",
                    code="embedding_dimension_mismatch",
                )
            # The API already returns unit vectors; renormalising is cheap insurance
            # against float drift and compatible servers that do not.
            vectors.append(l2_normalize(row.embedding))
        return vectors
