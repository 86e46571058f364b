"""Delivery with push semantics: asynchronous, retried with backoff, then given up.

Shared by the local Pub/Sub bus, the local Cloud Tasks queue and the bucket notifier.
A job is a callable taking the attempt number and returning True on success; failures
(False or an exception) are retried with exponential backoff until ``max_attempts``,
then ``on_exhausted`` runs (the dead-letter hand-off).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Attempt = Callable[[int], bool]


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    name: str = field(compare=False)
    attempt_fn: Attempt = field(compare=False)
    max_attempts: int = field(compare=False)
    on_exhausted: Callable[[int], None] | None = field(compare=False)
    attempt: int = field(compare=False, default=1)


@dataclass
class Backoff:
    """Exponential backoff: ``base * 2**(attempt-1)``, capped, with jitter."""

    base_s: float = 0.2
    max_s: float = 10.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retrying after failed ``attempt``."""
        delay = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return delay * (1 + random.uniform(-self.jitter, self.jitter))


class Dispatcher:
    """Runs jobs on worker threads, retrying failures with backoff."""

    def __init__(
        self,
        *,
        workers: int = 4,
        backoff: Backoff | None = None,
        max_per_second: float | None = None,
        name: str = "dispatcher",
    ) -> None:
        self._heap: list[_Job] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._inflight = 0
        self._stopped = False
        self.backoff = backoff or Backoff()
        self._min_interval = 1.0 / max_per_second if max_per_second else 0.0
        self._next_start = 0.0
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        name: str,
        attempt_fn: Attempt,
        *,
        max_attempts: int,
        on_exhausted: Callable[[int], None] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Schedule a job to run after ``delay_s`` seconds."""
        job = _Job(
            time.monotonic() + delay_s,
            next(self._seq),
            name,
            attempt_fn,
            max_attempts,
            on_exhausted,
        )
        with self._cond:
            heapq.heappush(self._heap, job)
            self._cond.notify()

    def idle(self) -> bool:
        """True when no job is queued or running."""
        with self._cond:
            return not self._heap and self._inflight == 0

    def stop(self) -> None:
        """Stop the workers (queued jobs are dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def _take(self) -> _Job | None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                if self._heap and self._heap[0].due <= now:
                    if self._min_interval:
                        # A simple rate limit: job starts are spaced evenly.
                        if now < self._next_start:
                            self._cond.wait(self._next_start - now)
                            continue
                        self._next_start = now + self._min_interval
                    self._inflight += 1
                    return heapq.heappop(self._heap)
                timeout = self._heap[0].due - now if self._heap else None
                self._cond.wait(timeout)
            return None

    def _work(self) -> None:
        while True:
            job = self._take()
            if job is None:
                return
            try:
                ok = job.attempt_fn(job.attempt)
            except Exception:
                log.exception("delivery of %s failed (attempt %d)", job.name, job.attempt)
                ok = False
            retry = not ok and job.attempt < job.max_attempts
            if not ok and not retry:
                log.warning("giving up on %s after %d attempts", job.name, job.attempt)
                if job.on_exhausted is not None:
                    # Still counted in flight, so idle() cannot report a gap between
                    # giving up and the dead-letter hand-off.
                    try:
                        job.on_exhausted(job.attempt)
                    except Exception:
                        log.exception("dead-letter hand-off of %s failed", job.name)
            with self._cond:
                self._inflight -= 1
                if retry:
                    job.attempt += 1
                    job.due = time.monotonic() + self.backoff.delay(job.attempt - 1)
                    job.seq = next(self._seq)
                    heapq.heappush(self._heap, job)
                self._cond.notify_all()
