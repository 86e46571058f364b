"""The rate-limited embeddings server, and the OpenAI embedder's pacing and packing against it.

Everything goes through the real ``openai`` client over loopback HTTP. The server, the
embedder's pacer and its sleeps share one hand-advanced clock, so windows pass without
waiting and nothing depends on timing.
"""

from __future__ import annotations

import math

import openai
import pytest

from scripts.localstack.openai_limits import RateLimitedEmbeddings, embedding
from shared.embeddings.openai import EmbeddingLimits, OpenAIEmbedder, RetryPolicy
from shared.embeddings.pacer import RatePacer
from shared.tokens import openai_token_counts

MODEL = "text-embedding-3-small"


class Clock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def serve(clock: Clock, **limits: int) -> RateLimitedEmbeddings:
    return RateLimitedEmbeddings(clock=clock, **limits)


def words(count: int) -> str:
    """A text of exactly ``count`` cl100k tokens (" hello" is one token)."""
    return "hello" + " hello" * (count - 1)


def test_requests_over_the_rpm_get_429_with_retry_after_until_the_window_moves(
    clock: Clock,
) -> None:
    with serve(clock, rpm=2, tpm=1_000_000) as server:
        api = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        for _ in range(2):
            api.embeddings.create(model=MODEL, input=["a"])
        clock.now += 10
        with pytest.raises(openai.RateLimitError) as refused:
            api.embeddings.create(model=MODEL, input=["a"])
        headers = refused.value.response.headers
        # The first request leaves the window 60 s after it was admitted: 50 s from now.
        assert headers["retry-after-ms"] == "50000" and headers["retry-after"] == "50"
        assert headers["x-ratelimit-limit-requests"] == "2"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-limit-tokens"] == "1000000"
        clock.now += 50
        api.embeddings.create(model=MODEL, input=["a"])
        stats = server.stats()
    assert (stats.requests, stats.rate_limited) == (3, 1)


def test_tokens_over_the_tpm_get_429_and_refused_requests_are_not_counted(
    clock: Clock,
) -> None:
    with serve(clock, rpm=100, tpm=1000) as server:
        api = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        first = api.embeddings.create(model=MODEL, input=[words(600)], dimensions=8)
        assert first.usage.prompt_tokens == 600
        clock.now += 1
        api.embeddings.create(model=MODEL, input=[words(300)])
        clock.now += 1
        for _ in range(2):  # 900 in the window: 200 more do not fit until the first leaves
            with pytest.raises(openai.RateLimitError) as refused:
                api.embeddings.create(model=MODEL, input=[words(200)])
            assert refused.value.response.headers["retry-after-ms"] == "58000"
        assert refused.value.response.headers["x-ratelimit-remaining-tokens"] == "100"
        api.embeddings.create(model=MODEL, input=[words(100)])  # still fits
        clock.now += 58
        api.embeddings.create(model=MODEL, input=[words(200)])
        stats = server.stats()
    assert (stats.requests, stats.rate_limited, stats.tokens) == (4, 2, 1200)
    assert [a.tokens for a in stats.accepted] == [600, 300, 100, 200]


def test_the_wire_format_is_openais(clock: Clock) -> None:
    with serve(clock, rpm=10, tpm=10_000) as server:
        api = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        floats = api.embeddings.create(model=MODEL, input=["b", "a"], dimensions=16)
        packed = api.embeddings.create(model=MODEL, input="a", dimensions=16)  # base64
        assert [row.index for row in floats.data] == [0, 1]
        assert floats.data[1].embedding == pytest.approx(embedding("a", 16))
        assert packed.data[0].embedding == pytest.approx(embedding("a", 16), abs=1e-6)
        assert math.fsum(x * x for x in floats.data[0].embedding) == pytest.approx(1.0)
        assert len(api.embeddings.create(model=MODEL, input=["x"]).data[0].embedding) == 1536
        with pytest.raises(openai.BadRequestError):
            api.embeddings.create(model=MODEL, input=[words(10_001)])  # over the minute
        with pytest.raises(openai.BadRequestError):
            api.embeddings.create(model=MODEL, input=[""])
        assert server.stats().rejected == 2


def test_the_embedder_makes_the_fewest_requests_the_limits_allow(clock: Clock) -> None:
    # 300 inputs of 70 tokens: 21,000 tokens under a 1,000-token request cap.
    texts = [words(70) for _ in range(300)]
    total = sum(openai_token_counts(texts))
    with serve(clock, rpm=1000, tpm=1_000_000, request_tokens=1000) as server:
        embedder = OpenAIEmbedder(
            MODEL,
            8,
            api_key="local",
            base_url=server.base_url,
            limits=EmbeddingLimits(rpm=1000, tpm=1_000_000, request_tokens=1000),
            pacer=RatePacer(1000, 1_000_000, clock=clock, sleep=clock.sleep),
        )
        vectors = embedder.embed(texts)
        stats = server.stats()
    assert len(vectors) == 300
    # 14 inputs (980 tokens) per request: ceil(300 / 14) = 22 requests, the minimum
    # for 70-token inputs that cannot be split (ceil(21,000 / 1,000) = 21 if they could).
    assert stats.requests == math.ceil(300 / (1000 // 70)) == 22
    assert math.ceil(total / 1000) == 21
    assert stats.tokens == total == embedder.stats.tokens
    assert embedder.stats.requests == 22 and embedder.stats.retries == 0


def test_the_embedder_waits_exactly_the_retry_after_and_counts_the_retry(clock: Clock) -> None:
    with serve(clock, rpm=1, tpm=1_000_000) as server:
        embedder = OpenAIEmbedder(
            MODEL,
            8,
            api_key="local",
            base_url=server.base_url,
            retry=RetryPolicy(max_attempts=3, max_retry_after=120),
            sleep=clock.sleep,
        )
        embedder.embed(["first"])
        clock.now += 12.5
        embedder.embed(["second"])  # no pacer: the server refuses, the embedder waits
        stats = server.stats()
    assert clock.sleeps == [47.5]
    assert (stats.requests, stats.rate_limited) == (2, 1)
    assert (embedder.stats.requests, embedder.stats.retries) == (3, 1)
    assert embedder.stats.rate_limited == 1


def test_the_pacer_keeps_a_lone_instance_free_of_429s(clock: Clock) -> None:
    with serve(clock, rpm=3, tpm=500) as server:
        embedder = OpenAIEmbedder(
            MODEL,
            8,
            api_key="local",
            base_url=server.base_url,
            limits=EmbeddingLimits(rpm=3, tpm=500, request_tokens=200),
            pacer=RatePacer(3, 500, clock=clock, sleep=clock.sleep),
            sleep=clock.sleep,
        )
        for _ in range(5):
            embedder.embed([words(150), words(50)])  # one full 200-token request each
        stats = server.stats()
    assert (stats.requests, stats.rate_limited) == (5, 0)
    # 500 tokens a minute: two requests fit at once, the third waits for the first.
    starts = [a.at - 1000.0 for a in stats.accepted]
    assert starts == [0.0, 0.0, 60.0, 60.0, 120.0]
    assert embedder.pacer is not None and embedder.pacer.stats.waited_s == 120.0


def waited(pacer: RatePacer, clock: Clock, tokens: int) -> float:
    """Seconds ``acquire`` waited on the clock."""
    before = clock.now
    pacer.acquire(tokens)
    return clock.now - before


def test_a_held_pacer_sends_nothing_before_the_retry_after(clock: Clock) -> None:
    pacer = RatePacer(100, 10_000, clock=clock, sleep=clock.sleep)
    pacer.acquire(10)
    pacer.hold(7.0)
    assert waited(pacer, clock, 10) == 7.0
    assert pacer.stats.requests == 2 and pacer.stats.tokens == 20


def test_the_bucket_spends_the_minute_evenly_one_full_request_at_a_time(clock: Clock) -> None:
    pacer = RatePacer(100, 600, burst=100, clock=clock, sleep=clock.sleep)  # 10 tokens/s
    assert waited(pacer, clock, 100) == 10.0  # it starts empty: a fresh instance gathers first
    assert waited(pacer, clock, 50) == 5.0
    clock.now += 100  # idle: the bucket fills up to one full request, no more
    assert waited(pacer, clock, 100) == 0.0
    assert waited(pacer, clock, 100) == 10.0
    with pacer.reserve(100):  # room for a full request, before gathering its inputs
        assert clock.now - 1000.0 == 135.0
        assert waited(pacer, clock, 80) == 0.0
    assert pacer.stats.waited_s == 35.0


def test_embedders_of_one_model_share_its_pacer() -> None:
    limits = EmbeddingLimits(rpm=100, tpm=10_000, request_tokens=500)
    small = OpenAIEmbedder(MODEL, 8, api_key="k", base_url="http://127.0.0.1:9/v1", limits=limits)
    large = OpenAIEmbedder(MODEL, 64, api_key="k", base_url="http://127.0.0.1:9/v1", limits=limits)
    other = OpenAIEmbedder(
        "text-embedding-3-large", 8, api_key="k", base_url="http://127.0.0.1:9/v1", limits=limits
    )
    assert small.pacer is not None and small.pacer is large.pacer
    assert other.pacer is not small.pacer
    assert small.pacer.burst == small.request_tokens == 500


def test_a_request_counts_in_the_minute_from_its_response(clock: Clock) -> None:
    # The server starts a request's minute when it arrives, after the client sent it and
    # before the response: counted from the response, the client's minute covers it.
    pacer = RatePacer(1, 10_000, clock=clock, sleep=clock.sleep)
    sent = pacer.acquire(10)
    clock.now += 0.5  # the round trip
    pacer.finished(sent)
    assert waited(pacer, clock, 10) == 60.0
