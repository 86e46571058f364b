"""How many candidates an HNSW walk keeps (``hnsw.ef_search``) as the graph grows."""

from __future__ import annotations

from shared.retrieval.search import (
    EF_SEARCH_CHUNKS_PER_CANDIDATE,
    EF_SEARCH_MAX,
    EF_SEARCH_MIN,
    ef_search_for,
)


def test_a_small_graph_walks_with_the_floor() -> None:
    assert ef_search_for(0, 40) == EF_SEARCH_MIN
    assert ef_search_for(EF_SEARCH_MIN * EF_SEARCH_CHUNKS_PER_CANDIDATE, 40) == EF_SEARCH_MIN


def test_the_walk_grows_with_the_graph_up_to_pgvectors_limit() -> None:
    per = EF_SEARCH_CHUNKS_PER_CANDIDATE
    assert ef_search_for(300 * per, 40) == 300
    assert ef_search_for(300 * per + 1, 40) == 301
    assert ef_search_for(100 * EF_SEARCH_MAX * per, 40) == EF_SEARCH_MAX


def test_the_walk_keeps_at_least_the_candidates_it_returns() -> None:
    assert ef_search_for(0, 400) == 400
    assert ef_search_for(0, 5000) == EF_SEARCH_MAX
