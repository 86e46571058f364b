"""A client-side pacer that keeps one instance inside its share of a provider's rate limits.

The provider limits requests and tokens per minute. This pacer keeps the same books the
limit is enforced with: a sliding one-minute window of the requests sent and their
tokens. A request goes only when both fit in the window, so an instance alone never
draws a 429; if one comes anyway (another client shares the limit), the server's
``Retry-After`` holds every request of the instance back until then (:meth:`RatePacer.hold`).

Within the window, tokens are also spent evenly: a bucket of ``burst`` tokens (one full
request) refills at ``tpm / 60`` a second and starts empty. A request goes when the
bucket holds its tokens, so a full request leaves every ``burst / (tpm / 60)`` seconds
instead of a minute's worth at once and then nothing: the window is spent at the rate it
frees up, and what is made meanwhile waits for the next request, which is full whenever
inputs come faster than the limit lets them go.

The books are kept under one re-entrant lock that is also held while waiting: requests
leave an instance one at a time, in arrival order, each as soon as the limits allow.
:meth:`RatePacer.reserve` waits for room for a full request *before* the caller gathers
its inputs, so the inputs gathered while waiting ride in that request.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

WINDOW_S = 60.0
"""The rate limits' window: requests and tokens per minute."""

Sent = list[float]
"""One request in the window: ``[when it counts from, tokens]``."""


@dataclass
class PacerStats:
    """What the pacer let through and how long callers waited.

    Attributes:
        requests: Requests admitted.
        tokens: Tokens admitted.
        waited_s: Seconds callers spent waiting for room in the window.
    """

    requests: int = 0
    tokens: int = 0
    waited_s: float = 0.0


class RatePacer:
    """Admits requests within ``rpm`` requests and ``tpm`` tokens per sliding minute.

    Args:
        rpm: Requests per minute this instance may send.
        tpm: Tokens per minute this instance may send.
        window_s: Length of the window (a minute; tests may shorten it).
        clock: Monotonic clock in seconds.
        sleep: Called with each wait (tests pass one that advances their clock).
    """

    def __init__(
        self,
        rpm: int,
        tpm: int,
        *,
        burst: int | None = None,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rpm < 1 or tpm < 1:
            raise ValueError("rate limits must be positive")
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.RLock()
        self._sent: deque[Sent] = deque()
        self._tokens_in_window = 0
        self._hold_until = 0.0
        self.burst = min(burst, tpm) if burst is not None else None
        self._level = 0.0  # the bucket starts empty: see the module's docstring
        self._filled_at = clock()
        self.stats = PacerStats()

    def acquire(self, tokens: int) -> Sent:
        """Wait until a request of ``tokens`` fits the window, then count it as sent.

        A request larger than the whole per-minute budget waits for an empty window
        (the caller's request cap keeps requests below that). Pass the result to
        :meth:`finished` when the response is in.

        Returns:
            The request's entry in the window.
        """
        with self._lock:
            self._wait_for_room(tokens)
            sent: Sent = [self._clock(), float(tokens)]
            self._sent.append(sent)
            self._level -= min(tokens, self.burst or 0)
            self._tokens_in_window += tokens
            self.stats.requests += 1
            self.stats.tokens += tokens
            return sent

    def finished(self, sent: Sent) -> None:
        """Count the request's minute from its response on.

        The server starts a request's minute when the request arrives, after this side
        sent it and before the response: counting from the response keeps this side's
        minute over the server's, so a lone instance is never refused.
        """
        with self._lock:
            sent[0] = max(sent[0], self._clock())

    @contextmanager
    def reserve(self, tokens: int) -> Iterator[None]:
        """Hold the instance's turn until a request of ``tokens`` fits the window.

        Inside the block the caller gathers its inputs and sends them (its
        :meth:`acquire` of at most ``tokens`` then returns at once); other callers wait.
        """
        with self._lock:
            self._wait_for_room(tokens)
            yield

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server's ``Retry-After``), from now."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)

    def _wait_for_room(self, tokens: int) -> float:
        waited = 0.0
        while True:
            delay = self._delay(min(tokens, self.tpm))
            if delay <= 0:
                self.stats.waited_s += waited
                return waited
            self._sleep(delay)
            waited += delay

    def _delay(self, tokens: int) -> float:
        """Seconds until ``tokens`` more fit the window (0: now)."""
        now = self._clock()
        horizon = now - self.window_s
        while self._sent and self._sent[0][0] <= horizon:
            self._tokens_in_window -= int(self._sent.popleft()[1])
        delay = max(0.0, self._hold_until - now)
        if len(self._sent) + 1 > self.rpm:
            delay = max(delay, self._sent[len(self._sent) - self.rpm][0] + self.window_s - now)
        if self.burst is not None:
            rate = self.tpm / self.window_s
            self._level = min(self.burst, self._level + (now - self._filled_at) * rate)
            self._filled_at = now
            short = min(tokens, self.burst) - self._level
            if short > 0:
                delay = max(delay, short / rate)
        excess = self._tokens_in_window + tokens - self.tpm
        if excess > 0:
            # The oldest requests leave the window first; wait until enough have left.
            freed = 0.0
            for sent_at, sent_tokens in self._sent:
                freed += sent_tokens
                if freed >= excess:
                    delay = max(delay, sent_at + self.window_s - now)
                    break
        return delay


_shared_lock = threading.Lock()
_shared: dict[str, RatePacer] = {}


def shared_pacer(model: str, rpm: int, tpm: int, burst: int | None = None) -> RatePacer:
    """Return the process's pacer for ``model``: the provider limits each model separately.

    Every embedder of the model (one per vector dimension) shares it, so together they
    stay inside the instance's share.
    """
    with _shared_lock:
        pacer = _shared.get(model)
        if pacer is None or (pacer.rpm, pacer.tpm, pacer.burst) != (rpm, tpm, burst):
            pacer = RatePacer(rpm, tpm, burst=burst)
            _shared[model] = pacer
        return pacer
