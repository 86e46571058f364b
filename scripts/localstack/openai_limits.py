"""A rate-limited OpenAI-compatible embeddings server on loopback, for benchmarks and tests.

``POST /v1/embeddings`` speaks OpenAI's wire format (``input`` as a string or a list,
``dimensions``, ``encoding_format`` float or base64, ``usage``) and answers with
deterministic unit vectors of the requested dimension. Like the real API it enforces
requests per minute and tokens per minute, here over a sliding one-minute window: a
request that does not fit gets a 429 with ``Retry-After`` (whole seconds, rounded up),
``retry-after-ms`` and the ``x-ratelimit-*`` headers OpenAI sends, and is not counted.
Tokens are cl100k_base tokens (:func:`shared.tokens.openai_token_counts`). Every
response waits ``latency_s`` first, like a round trip to the provider. A request over
2,048 inputs, over the per-request token cap or over the whole minute's budget is a 400.

Example::

    with RateLimitedEmbeddings(rpm=60, tpm=100_000, latency_s=0.2) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        client.embeddings.create(model="text-embedding-3-small", input=["hi"])
        server.stats().requests  # 1
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from scripts.localstack.loopback_http import LoopbackHttpServer
from shared.tokens import openai_token_counts

MAX_INPUTS = 2048
MAX_REQUEST_TOKENS = 300_000
WINDOW_S = 60.0
DEFAULT_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


@dataclass(frozen=True)
class Accepted:
    """One request the server answered with embeddings.

    Attributes:
        at: Server clock when it was admitted.
        tokens: Its cl100k tokens.
        inputs: Its inputs.
    """

    at: float
    tokens: int
    inputs: int


@dataclass
class LimitStats:
    """What the server saw.

    Attributes:
        requests: Requests that got embeddings.
        rate_limited: Requests answered 429.
        rejected: Requests answered 400 (malformed or too large).
        tokens: Tokens of the requests that got embeddings.
        inputs: Inputs embedded.
        accepted: Every successful request, in order.
    """

    requests: int = 0
    rate_limited: int = 0
    rejected: int = 0
    tokens: int = 0
    inputs: int = 0
    accepted: list[Accepted] = field(default_factory=list)


def embedding(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector for ``text``: the same text always gets the same one."""
    digest = b""
    counter = 0
    while len(digest) < 2 * dimension:
        digest += hashlib.blake2b(
            text.encode("utf-8"), digest_size=64, salt=counter.to_bytes(8, "big")
        ).digest()
        counter += 1
    values = [value - 32767.5 for value in struct.unpack(f">{dimension}H", digest[: 2 * dimension])]
    norm = math.sqrt(math.fsum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


def _duration(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` format, e.g. ``"1.5s"`` or ``"6m0s"``."""
    if seconds >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m{rest:.0f}s"
    return f"{seconds:.3g}s" if seconds >= 0.001 else "0s"


class RateLimitedEmbeddings(LoopbackHttpServer):
    """The server: ``127.0.0.1`` on an ephemeral port, one thread per connection.

    Args:
        rpm: Requests per minute admitted.
        tpm: Tokens per minute admitted.
        latency_s: Seconds added before every response.
        request_tokens: Most tokens in one request (OpenAI's 300,000).
        window_s: The window's length (a minute; tests may shorten it).
        clock: The server's clock in seconds (tests pass one they advance).
    """

    def __init__(
        self,
        *,
        rpm: int,
        tpm: int,
        latency_s: float = 0.0,
        request_tokens: int = MAX_REQUEST_TOKENS,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.rpm = rpm
        self.tpm = tpm
        self.latency_s = latency_s
        self.request_tokens = request_tokens
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[tuple[float, int]] = deque()
        self._window_tokens = 0
        self._stats = LimitStats()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """This server's request handler."""
        return _make_handler(self)

    def stats(self) -> LimitStats:
        """A copy of the counts so far."""
        with self._lock:
            return LimitStats(
                requests=self._stats.requests,
                rate_limited=self._stats.rate_limited,
                rejected=self._stats.rejected,
                tokens=self._stats.tokens,
                inputs=self._stats.inputs,
                accepted=list(self._stats.accepted),
            )

    def reset(self) -> None:
        """Forget the counts and empty the window."""
        with self._lock:
            self._window.clear()
            self._window_tokens = 0
            self._stats = LimitStats()

    def answer(self, payload: Any) -> tuple[int, dict[str, str], Any]:
        """Status, headers and body for one ``/v1/embeddings`` request body."""
        inputs = payload.get("input") if isinstance(payload, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(item, str) for item in inputs):
            return self._reject("input must be a string or a list of strings")
        if not 1 <= len(inputs) <= MAX_INPUTS or any(item == "" for item in inputs):
            return self._reject(f"input must hold 1..{MAX_INPUTS} non-empty strings")
        tokens = sum(openai_token_counts(inputs))
        if tokens > min(self.request_tokens, self.tpm):
            return self._reject(
                f"Request too large: {tokens} tokens, at most"
                f" {min(self.request_tokens, self.tpm)} per request"
            )
        with self._lock:
            now = self._clock()
            wait = self._wait(now, tokens)
            if wait > 0:
                self._stats.rate_limited += 1
                headers = self._limit_headers(now)
                headers["retry-after-ms"] = str(math.ceil(wait * 1000))
                headers["Retry-After"] = str(math.ceil(wait))
                body = {
                    "error": {
                        "message": f"Rate limit reached: {tokens} tokens requested;"
                        f" limits {self.rpm} RPM, {self.tpm} TPM. Try again in {wait:.3f}s.",
                        "type": "tokens",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                }
                return 429, headers, body
            self._window.append((now, tokens))
            self._window_tokens += tokens
            self._stats.requests += 1
            self._stats.tokens += tokens
            self._stats.inputs += len(inputs)
            self._stats.accepted.append(Accepted(now, tokens, len(inputs)))
            headers = self._limit_headers(now)
        model = str(payload.get("model", ""))
        dimension = int(payload.get("dimensions") or DEFAULT_DIMENSIONS.get(model, 8))
        data = []
        for index, text in enumerate(inputs):
            vector = embedding(text, dimension)
            value: Any = vector
            if payload.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, headers, {"object": "list", "data": data, "model": model, "usage": usage}

    def _reject(self, message: str) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self._stats.rejected += 1
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        return 400, {}, {"error": error}

    def _expire(self, now: float) -> None:
        while self._window and self._window[0][0] <= now - self.window_s:
            self._window_tokens -= self._window.popleft()[1]

    def _wait(self, now: float, tokens: int) -> float:
        """Seconds until a request of ``tokens`` fits the window (0: it fits now)."""
        self._expire(now)
        wait = 0.0
        if len(self._window) + 1 > self.rpm:
            wait = self._window[len(self._window) - self.rpm][0] + self.window_s - now
        excess = self._window_tokens + tokens - self.tpm
        freed = 0
        for sent_at, sent_tokens in self._window:
            if excess <= 0:
                break
            freed += sent_tokens
            if freed >= excess:
                wait = max(wait, sent_at + self.window_s - now)
                break
        return wait

    def _limit_headers(self, now: float) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for the window as it stands."""
        remaining_tokens = max(0, self.tpm - self._window_tokens)
        reset_requests = self._window[0][0] + self.window_s - now if self._window else 0.0
        reset_tokens = self._wait(now, self.tpm) if self._window_tokens else 0.0
        return {
            "x-ratelimit-limit-requests": str(self.rpm),
            "x-ratelimit-limit-tokens": str(self.tpm),
            "x-ratelimit-remaining-requests": str(max(0, self.rpm - len(self._window))),
            "x-ratelimit-remaining-tokens": str(remaining_tokens),
            "x-ratelimit-reset-requests": _duration(max(0.0, reset_requests)),
            "x-ratelimit-reset-tokens": _duration(max(0.0, reset_tokens)),
        }


def _make_handler(server: RateLimitedEmbeddings) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a benchmark's output stays readable

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers: dict[str, str] = {}
            body: Any
            if self.path.split("?", 1)[0] != "/v1/embeddings":
                status, body = 404, {"error": {"message": "not found"}}
            else:
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                status, headers, body = server.answer(payload)
            if server.latency_s:
                time.sleep(server.latency_s)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return _Handler
