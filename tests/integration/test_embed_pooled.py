"""Embed requests filled across versions, with the real ``openai`` client against the
rate-limited local embeddings server (scripts/localstack/openai_limits.py).

The ``recorder`` fixture holds every embed task, so each test decides which task runs
when; the steps, the database and storage are the real ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from scripts.localstack.openai_limits import RateLimitedEmbeddings, embedding
from scripts.localstack.stack import LocalStack
from shared.config import get_settings
from shared.embeddings import clear_embedder_cache
from shared.pipeline.ingest import register_object
from shared.pipeline.steps import chunk_version, embed_batch, index_version, parse_version
from shared.store.documents import ensure_document
from shared.tokens import openai_token_counts
from tests.support.api import Api
from tests.support.pipeline import Recorder, version_status

MODEL = "openai:text-embedding-3-small"
DIM = 32


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> Iterator[RateLimitedEmbeddings]:
    """The rate-limited server, which new OpenAI embedders of this test talk to."""
    with RateLimitedEmbeddings(rpm=10_000, tpm=10_000_000) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        clear_embedder_cache()
        yield server
        clear_embedder_cache()


def prepare(stack: LocalStack, count: int, words: int) -> tuple[str, list[str]]:
    """A knowledge base on the OpenAI model with ``count`` versions chunked, none embedded."""
    kb = Api(stack).create_kb("pooled", embedding_model=MODEL, embedding_dimensions=DIM)
    versions = []
    for number in range(count):
        text = f"# Note {number}\n\n" + " ".join(f"fact{number}x{i}" for i in range(words))
        version = store_document(stack, kb["id"], f"note-{number}.md", text)
        assert parse_version(stack.runtime, version) and chunk_version(stack.runtime, version)
        versions.append(version)
    return kb["id"], versions


def store_document(stack: LocalStack, kb_id: str, name: str, text: str) -> str:
    """Store ``text`` as a document of its own and register it; return the version id."""
    document_id = ensure_document(stack.database, kb_id, name, name, "tester")
    info = stack.objects.upload_bytes(
        stack.settings.upload_bucket, f"_uploads/{document_id}/1/{name}", text.encode()
    )
    registered = register_object(stack.runtime, document_id, info)
    assert registered is not None
    return registered.version_id


def chunk_texts(stack: LocalStack, kb_id: str) -> list[str]:
    return [
        str(text)
        for text in stack.database.scalars(
            "SELECT text FROM chunks WHERE kb_id = CAST(:kb AS uuid) ORDER BY id", kb=kb_id
        )
    ]


def test_one_task_embeds_every_waiting_version_in_one_request(
    clean_stack: LocalStack, recorder: Recorder, limited: RateLimitedEmbeddings
) -> None:
    kb_id, versions = prepare(clean_stack, 12, 40)
    first, *rest = list(recorder.tasks.values())
    assert len(recorder.tasks) == 12  # one task per small version

    assert embed_batch(clean_stack.runtime, first)
    stats = limited.stats()
    assert stats.requests == 1 and stats.inputs == len(chunk_texts(clean_stack, kb_id))
    # Every version the request completed moved on to index, not only the task's own.
    assert {version_status(clean_stack, v) for v in versions} == {"indexing"}
    indexed = {m.version_id for topic, m in recorder.messages if topic.endswith("index")}  # type: ignore[attr-defined]
    assert indexed == set(versions)

    for task in rest:  # their chunks have vectors: no request, nothing changes
        assert embed_batch(clean_stack.runtime, task)
    assert limited.stats().requests == 1
    for version in versions:
        assert index_version(clean_stack.runtime, version)
    assert {version_status(clean_stack, v) for v in versions} == {"ready"}
    stored = clean_stack.database.scalars(
        "SELECT embedding::text FROM chunks WHERE kb_id = CAST(:kb AS uuid) ORDER BY id",
        kb=kb_id,
    )
    expected = [embedding(text, DIM) for text in chunk_texts(clean_stack, kb_id)]
    for vector, want in zip(stored, expected, strict=True):
        got = [float(x) for x in str(vector).strip("[]").split(",")]
        assert got == pytest.approx(want, abs=1e-5)


def test_requests_are_as_full_as_the_request_cap_allows(
    clean_stack: LocalStack,
    recorder: Recorder,
    limited: RateLimitedEmbeddings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cap = 600
    monkeypatch.setattr(get_settings(), "embedding_request_tokens", cap)
    kb_id, versions = prepare(clean_stack, 20, 60)
    counts = openai_token_counts(chunk_texts(clean_stack, kb_id))
    assert max(counts) < cap < sum(counts)

    database = clean_stack.database
    database.run(  # every lease long gone: only the backlog's progress keeps them now
        "UPDATE document_versions SET lease_expires_at = now() - interval '1 hour'"
        " WHERE kb_id = CAST(:kb AS uuid)",
        kb=kb_id,
    )
    first, *rest = list(recorder.tasks.values())
    embed_batch(clean_stack.runtime, first)
    waiting = database.scalar(
        "SELECT count(*) FROM document_versions WHERE kb_id = CAST(:kb AS uuid)"
        " AND status = 'embedding'",
        kb=kb_id,
    )
    live = database.scalar(
        "SELECT count(*) FROM document_versions WHERE kb_id = CAST(:kb AS uuid)"
        " AND status = 'embedding' AND lease_expires_at > now() + interval '60 seconds'",
        kb=kb_id,
    )
    assert waiting > 0 and live == waiting  # the versions still waiting are not stalled

    for task in rest:
        embed_batch(clean_stack.runtime, task)

    stats = limited.stats()
    assert stats.tokens == sum(counts) and stats.rate_limited == 0
    assert all(request.tokens <= cap for request in stats.accepted)
    # Whole chunks cannot be split, so the floor is only approached: at most one
    # request more than the tokens need, and far fewer than one per version.
    assert stats.requests <= math.ceil(sum(counts) / cap) + 1 < len(versions)
    assert {version_status(clean_stack, v) for v in versions} == {"indexing"}
