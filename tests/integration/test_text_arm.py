"""The full-text arm: BM25 over the knowledge base's statistics, rarest words first.

The expected rankings are computed here, in Python, from each chunk's stored lexemes
and positions (Okapi BM25 with k1 = 1.2, b = 0.75, idf ln(1 + (N - df + 0.5) /
(df + 0.5))); the statistics (``kb_terms``, ``kb_text_stats``) are checked against a
recount of the chunks readers can see after re-ingest, archive and delete.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.retrieval import search
from shared.retrieval.search import RetrievalRequest
from shared.store.search import ModelInScope
from tests.support.api import Api
from tests.support.stack import wipe_stack

# One chunk each (short texts, chunk_tokens well above their length).
TEXTS = {
    "alpha.md": "The lighthouse keeper logs the tide. The tide rises twice a day.",
    "beta.md": "A lighthouse lens focuses light over the tide and the rocks.",
    "gamma.md": "Bread rises in warm ovens; the baker watches the ovens all night.",
    "delta.md": "Keeper of ovens, keeper of bread, keeper of the lighthouse lamp oil.",
    "eps.md": "Rocks and reefs near the harbour wreck ships in fog and storm.",
    "zeta.md": "The harbour master logs ships, storms and the tide at the harbour.",
}
QUESTION = "lighthouse keeper tide harbour ovens"
K1, B = 1.2, 0.75


@pytest.fixture
def kb(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """A knowledge base of six one-chunk documents."""
    wipe_stack(stack)
    api = Api(stack)
    created = api.create_kb("bm25", chunk_tokens=200, chunk_overlap=0)
    documents = {
        name: api.upload(created["id"], name, text.encode())["document_id"]
        for name, text in TEXTS.items()
    }
    stack.wait_idle(180)
    yield {"id": created["id"], "documents": documents, "api": api}
    wipe_stack(stack)


def _visible(stack: LocalStack, kb_id: str) -> list[dict[str, Any]]:
    """Each readable chunk's id, token count and lexeme frequencies (from its tsvector)."""
    rows = stack.database.run(
        "SELECT c.id, greatest(c.token_count, 1), c.tsv::text FROM chunks c JOIN documents d"
        " ON d.active_version_id = c.version_id AND d.archived_at IS NULL"
        " WHERE d.kb_id = CAST(:k AS uuid) ORDER BY c.id",
        k=kb_id,
    )
    chunks = []
    for chunk_id, length, tsv in rows:
        tf = {
            match.group(1): len(match.group(2).split(","))
            for match in re.finditer(r"'([^']+)':([\d,A-D]+)", tsv)
        }
        chunks.append({"id": int(chunk_id), "dl": float(length), "tf": tf})
    return chunks


def _lexemes(stack: LocalStack, text: str) -> list[str]:
    return [
        str(lexeme)
        for (lexeme,) in stack.database.run(
            "SELECT unnest(tsvector_to_array(to_tsvector('english', :t)))", t=text
        )
    ]


def _bm25(chunks: list[dict[str, Any]], terms: list[str]) -> list[tuple[int, float]]:
    """BM25 ranking of the chunks containing any of ``terms``: best first, then by id."""
    n = len(chunks)
    avgdl = sum(c["dl"] for c in chunks) / n
    df = {t: sum(1 for c in chunks if t in c["tf"]) for t in terms}
    scored = []
    for chunk in chunks:
        score = 0.0
        for term in terms:
            tf = chunk["tf"].get(term, 0)
            if tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * chunk["dl"] / avgdl))
        if score > 0:
            scored.append((chunk["id"], score))
    return sorted(scored, key=lambda item: (-round(item[1], 4), item[0]))


def _text_arm(stack: LocalStack, kb_id: str, **request: Any) -> list[int]:
    model = ModelInScope(name="hashing-384", dimension=384, kb_ids=[kb_id])
    retrieval = RetrievalRequest(
        query=request.pop("query", QUESTION), kb_ids=[kb_id], workspace="default", **request
    )
    arms = search.search_model(stack.database, retrieval, model, retrieval.document_ids)
    return arms.text


def test_the_text_arm_ranks_like_bm25(stack: LocalStack, kb: dict[str, Any]) -> None:
    expected = [
        chunk_id for chunk_id, _ in _bm25(_visible(stack, kb["id"]), _lexemes(stack, QUESTION))
    ]
    assert len(expected) == 6
    assert _text_arm(stack, kb["id"]) == expected


def test_a_large_scope_ranks_the_rarest_words_candidates_by_full_bm25(
    stack: LocalStack, kb: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = _visible(stack, kb["id"])
    terms = _lexemes(stack, QUESTION)
    ranked = _bm25(chunks, terms)
    # As if the scope were too large to score every match: the walk is planned.
    monkeypatch.setattr(search, "EXACT_SEARCH_MAX_CHUNKS", 0)
    monkeypatch.setattr(search, "TEXT_POSTINGS", 10_000)
    assert _text_arm(stack, kb["id"]) == [chunk_id for chunk_id, _ in ranked]
    # A budget as small as the rarest word's postings: only the chunks holding it are
    # candidates (document frequency, ties by lexeme), each scored with every word.
    df = {
        t: sum(1 for c in chunks if t in c["tf"])
        for t in terms
        if any(t in c["tf"] for c in chunks)
    }
    by_rarity = sorted(df, key=lambda t: (df[t], t))
    monkeypatch.setattr(search, "TEXT_POSTINGS", df[by_rarity[0]])
    holding = {c["id"] for c in chunks if by_rarity[0] in c["tf"]}
    assert _text_arm(stack, kb["id"]) == [i for i, _ in ranked if i in holding]
    # Even the rarest word is in more chunks than the budget: the candidates are the
    # chunks holding two of the three rarest words, at most the budget of them read.
    budget = df[by_rarity[0]] - 1
    monkeypatch.setattr(search, "TEXT_POSTINGS", budget)
    pairs = {c["id"] for c in chunks if sum(1 for t in by_rarity[:3] if t in c["tf"]) >= 2}
    found = _text_arm(stack, kb["id"])
    assert pairs and set(found) <= pairs
    assert len(found) == min(len(pairs), budget)
    assert found == [i for i, _ in ranked if i in set(found)]


def _statistics(stack: LocalStack, kb_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """(kb_terms as stored, recount from the readable chunks)."""
    stored = {
        str(lexeme): int(df)
        for lexeme, df in stack.database.run(
            "SELECT lexeme, df FROM kb_terms WHERE kb_id = CAST(:k AS uuid) AND df <> 0",
            k=kb_id,
        )
    }
    counted: dict[str, int] = {}
    for chunk in _visible(stack, kb_id):
        for lexeme in chunk["tf"]:
            counted[lexeme] = counted.get(lexeme, 0) + 1
    return stored, counted


def _totals(stack: LocalStack, kb_id: str) -> tuple[list[int], list[int]]:
    stored = stack.database.run(
        "SELECT chunks, tokens FROM kb_text_stats WHERE kb_id = CAST(:k AS uuid)", k=kb_id
    )
    counted = stack.database.run(
        "SELECT count(*), coalesce(sum(greatest(c.token_count, 1)), 0) FROM chunks c"
        " JOIN documents d ON d.active_version_id = c.version_id AND d.archived_at IS NULL"
        " WHERE d.kb_id = CAST(:k AS uuid)",
        k=kb_id,
    )
    return [int(v) for v in stored[0]] if stored else [0, 0], [int(v) for v in counted[0]]


def _assert_counts_match(stack: LocalStack, kb_id: str) -> None:
    stored, counted = _statistics(stack, kb_id)
    assert stored == counted
    totals, recount = _totals(stack, kb_id)
    assert totals == recount


def test_statistics_follow_reingest_archive_and_delete(
    stack: LocalStack, kb: dict[str, Any]
) -> None:
    api: Api = kb["api"]
    kb_id = kb["id"]
    _assert_counts_match(stack, kb_id)
    assert _statistics(stack, kb_id)[0]["lighthous"] == 3

    # Re-ingest: a new version of alpha.md without "lighthouse".
    api.upload(kb_id, "alpha.md", b"The harbour pilot guides ships past the reef at dawn.")
    stack.wait_idle(180)
    _assert_counts_match(stack, kb_id)
    assert _statistics(stack, kb_id)[0]["lighthous"] == 2

    beta = kb["documents"]["beta.md"]
    assert api.post(f"/v1/documents/{beta}/archive").status_code == 200
    _assert_counts_match(stack, kb_id)
    assert _statistics(stack, kb_id)[0]["lighthous"] == 1
    assert api.post(f"/v1/documents/{beta}/archive").status_code == 200
    _assert_counts_match(stack, kb_id)
    assert api.post(f"/v1/documents/{beta}/unarchive").status_code == 200
    _assert_counts_match(stack, kb_id)
    assert _statistics(stack, kb_id)[0]["lighthous"] == 2

    delta = kb["documents"]["delta.md"]
    assert api.delete(f"/v1/documents/{delta}").status_code in (200, 202, 204)
    stack.wait_idle(180)
    _assert_counts_match(stack, kb_id)
    assert "lighthous" in _statistics(stack, kb_id)[0]
    assert _statistics(stack, kb_id)[0]["oven"] == 1

    # The ranking follows the statistics: still exactly BM25 over what is readable.
    expected = [i for i, _ in _bm25(_visible(stack, kb_id), _lexemes(stack, QUESTION))]
    assert _text_arm(stack, kb_id) == expected


def test_redelivered_activation_counts_once(stack: LocalStack, kb: dict[str, Any]) -> None:
    from shared.pipeline.steps import index_version

    kb_id = kb["id"]
    before = _statistics(stack, kb_id)[0]
    versions = stack.database.run(
        "SELECT active_version_id::text FROM documents WHERE kb_id = CAST(:k AS uuid)", k=kb_id
    )
    for (version,) in versions:
        assert not index_version(stack.runtime, str(version))
    assert _statistics(stack, kb_id)[0] == before
    _assert_counts_match(stack, kb_id)


def test_the_text_arm_reads_only_its_scope(stack: LocalStack, kb: dict[str, Any]) -> None:
    api: Api = kb["api"]
    other = api.create_kb("other", chunk_tokens=200, chunk_overlap=0)
    api.upload(other["id"], "x.md", b"Lighthouse keeper, lighthouse tide, lighthouse harbour.")
    stack.wait_idle(180)
    mine = {c["id"] for c in _visible(stack, kb["id"])}
    found = _text_arm(stack, kb["id"])
    assert found and set(found) <= mine
    gamma = kb["documents"]["gamma.md"]
    only = _text_arm(stack, kb["id"], document_ids=[gamma])
    gamma_chunks = {
        int(chunk_id)
        for (chunk_id,) in stack.database.run(
            "SELECT c.id FROM chunks c JOIN documents d ON d.active_version_id = c.version_id"
            " WHERE d.id = CAST(:d AS uuid)",
            d=gamma,
        )
    }
    assert only and set(only) == gamma_chunks
    assert _text_arm(stack, kb["id"], metadata={"missing": "value"}) == []
    stranger = RetrievalRequest(query=QUESTION, kb_ids=[kb["id"]], workspace="elsewhere")
    assert search.retrieve(stack.database, stranger).passages == []
