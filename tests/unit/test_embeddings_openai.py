"""The OpenAI embedder, through the real ``openai`` client, against a local server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from shared.embeddings import clear_embedder_cache, get_embedder
from shared.embeddings.openai import (
    MAX_INPUTS_PER_REQUEST,
    MAX_TOKENS_PER_REQUEST,
    OpenAIEmbedder,
    RetryPolicy,
    parse_retry_after,
)
from shared.errors import LimitExceededError, PermanentError, TransientError
from shared.tokens import openai_token_counts
from tests.support.openai_server import OpenAIServer, Reply, fake_embedding

MODEL = "text-embedding-3-small"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(api_key="test-key") as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def embedder(server: OpenAIServer, sleeps: list[float]) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        MODEL,
        16,
        api_key="test-key",
        base_url=server.base_url,
        retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=4.0),
        sleep=sleeps.append,  # record the backoff instead of waiting it out
        seed=7,
    )


def close(actual: list[list[float]], expected: list[list[float]]) -> bool:
    """Nested lists of floats equal within float tolerance (``approx`` is flat only)."""
    return len(actual) == len(expected) and all(
        a == pytest.approx(e) for a, e in zip(actual, expected, strict=True)
    )


def inputs_per_request(server: OpenAIServer) -> list[list[str]]:
    return [r.json["input"] for r in server.requests_to("/v1/embeddings")]


def test_embeds_in_order_as_unit_vectors(server: OpenAIServer, embedder: OpenAIEmbedder) -> None:
    texts = ["alpha", "beta", "gamma"]
    vectors = embedder.embed(texts)
    assert close(vectors, [fake_embedding(t, 16) for t in texts])
    assert all(sum(x * x for x in v) == pytest.approx(1.0) for v in vectors)
    [request] = server.requests
    assert request.json["model"] == MODEL and request.json["dimensions"] == 16
    assert request.headers["authorization"] == "Bearer test-key"
    assert embedder.model == "openai:text-embedding-3-small" and embedder.dimension == 16
    assert embedder.max_input_bytes == 8191


def test_empty_input_makes_no_request(server: OpenAIServer, embedder: OpenAIEmbedder) -> None:
    assert embedder.embed([]) == []
    assert server.requests == []


def test_batches_hold_at_most_2048_inputs(server: OpenAIServer, embedder: OpenAIEmbedder) -> None:
    texts = [f"text {i}" for i in range(5000)]
    vectors = embedder.embed(texts)
    sizes = [len(batch) for batch in inputs_per_request(server)]
    assert sizes == [MAX_INPUTS_PER_REQUEST, MAX_INPUTS_PER_REQUEST, 5000 - 2 * 2048]
    assert [x for batch in inputs_per_request(server) for x in batch] == texts
    assert vectors[4999] == pytest.approx(fake_embedding("text 4999", 16))


def test_batches_hold_at_most_300k_tokens(server: OpenAIServer, embedder: OpenAIEmbedder) -> None:
    # Requests are packed by cl100k tokens, as OpenAI counts them: each text here is
    # 1,250 tokens (" hello" is one), so exactly 240 fill a 300k-token request.
    texts = [f"hello{' hello' * 1249}" for _ in range(600)]
    assert openai_token_counts(texts[:1]) == [1250]
    embedder.embed(texts)
    batches = inputs_per_request(server)
    assert [len(batch) for batch in batches] == [240, 240, 120]
    for batch in batches:
        assert sum(openai_token_counts(batch)) <= MAX_TOKENS_PER_REQUEST
    assert [x for batch in batches for x in batch] == texts


def test_batches_are_packed_by_tokens_not_bytes(
    server: OpenAIServer, embedder: OpenAIEmbedder
) -> None:
    # 8,000-byte texts of about 2,000 tokens: the byte bound would make three requests.
    rng = random.Random(1)
    texts = ["".join(rng.choices(["tax ", "rate ", "debt "], k=1700)) for _ in range(100)]
    counts = openai_token_counts(texts)
    assert sum(len(t) for t in texts) > 2 * MAX_TOKENS_PER_REQUEST > sum(counts)
    embedder.embed(texts)
    assert len(inputs_per_request(server)) == 1


def test_input_over_the_provable_limit_is_permanent(
    server: OpenAIServer, embedder: OpenAIEmbedder
) -> None:
    embedder.embed(["é" * 4095])  # 8,190 bytes: provably <= 8,191 tokens
    with pytest.raises(LimitExceededError):
        embedder.embed(["ok", "é" * 4096])  # 8,192 bytes: cannot be proven to fit
    with pytest.raises(PermanentError):
        embedder.embed(["ok", ""])
    assert len(server.requests) == 1  # nothing sent for the invalid batches


def test_results_are_sorted_by_index(server: OpenAIServer, embedder: OpenAIEmbedder) -> None:
    data = [
        {"object": "embedding", "index": i, "embedding": fake_embedding(t, 16)}
        for i, t in enumerate(["a", "b", "c"])
    ]
    server.enqueue(
        Reply(
            body={
                "object": "list",
                "data": data[::-1],
                "model": MODEL,
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )
    )
    assert close(embedder.embed(["a", "b", "c"]), [fake_embedding(t, 16) for t in "abc"])


def test_429_honours_retry_after_then_succeeds(
    server: OpenAIServer, embedder: OpenAIEmbedder, sleeps: list[float]
) -> None:
    server.fail(429, headers={"Retry-After": "2"})
    server.fail(429, headers={"retry-after-ms": "250"})
    assert len(embedder.embed(["hello"])) == 1
    assert sleeps == [2.0, 0.25]
    assert len(server.requests) == 3


def test_retry_after_beyond_the_cap_hands_over_at_once(
    server: OpenAIServer, embedder: OpenAIEmbedder, sleeps: list[float]
) -> None:
    server.fail(429, headers={"Retry-After": "3600"})
    with pytest.raises(TransientError):
        embedder.embed(["hello"])
    assert sleeps == [] and len(server.requests) == 1


def test_5xx_until_exhaustion_is_transient(
    server: OpenAIServer, embedder: OpenAIEmbedder, sleeps: list[float]
) -> None:
    server.fail(500, times=3)
    server.fail(503, times=3)
    with pytest.raises(TransientError, match="after 4 attempts"):
        embedder.embed(["hello"])
    assert len(server.requests) == 4  # our attempts only: the client's retries are off
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, start=1):  # exponential backoff with jitter
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_connection_errors_are_retried(
    server: OpenAIServer, embedder: OpenAIEmbedder, sleeps: list[float]
) -> None:
    server.enqueue(Reply(drop=True))
    server.fail(502)
    assert close(embedder.embed(["hello"]), [fake_embedding("hello", 16)])
    assert len(server.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_credential_errors_are_transient_not_the_documents_fault(
    server: OpenAIServer, embedder: OpenAIEmbedder, sleeps: list[float], status: int
) -> None:
    server.fail(status)
    with pytest.raises(TransientError, match=f"credentials \\({status}\\)"):
        embedder.embed(["hello"])
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_are_permanent(
    server: OpenAIServer, embedder: OpenAIEmbedder, sleeps: list[float], status: int
) -> None:
    server.fail(status)
    with pytest.raises(PermanentError) as caught:
        embedder.embed(["hello"])
    assert caught.value.code == "embedding_rejected" and str(status) in str(caught.value)
    assert len(server.requests) == 1 and sleeps == []


def test_dimension_mismatch_is_permanent(server: OpenAIServer) -> None:
    wrong = OpenAIEmbedder(MODEL, 32, api_key="test-key", base_url=server.base_url)
    server.route(
        "/v1/embeddings",
        lambda request: Reply(
            body={
                "object": "list",
                "model": MODEL,
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
                "data": [{"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}],
            }
        ),
    )
    with pytest.raises(PermanentError, match="dimensions"):
        wrong.embed(["x"])


def test_fixed_size_models_do_not_send_dimensions(server: OpenAIServer) -> None:
    ada = OpenAIEmbedder(
        "openai:text-embedding-ada-002", api_key="test-key", base_url=server.base_url
    )
    assert ada.dimension == 1536
    assert len(ada.embed(["x"])[0]) == 1536
    assert "dimensions" not in server.requests[0].json
    with pytest.raises(ValueError):
        OpenAIEmbedder("text-embedding-ada-002", 256)
    with pytest.raises(ValueError):
        OpenAIEmbedder("some-custom-model")  # unknown size


def test_factory_honours_the_environment(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    clear_embedder_cache()
    try:
        embedder = get_embedder("openai:text-embedding-3-small", 8)
        assert get_embedder("openai:text-embedding-3-small", 8) is embedder
        assert close(embedder.embed(["env"]), [fake_embedding("env", 8)])
        assert server.requests[0].headers["authorization"] == "Bearer test-key"
    finally:
        clear_embedder_cache()


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now.timestamp()) == pytest.approx(30)
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "20", "retry-after": "9"}) == 0.02
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after({}) is None
