"""A selective filter still yields top_k passages: scope is applied inside the search."""

from __future__ import annotations

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of
from tests.support.stack import wipe_stack


def test_a_filter_matching_one_percent_of_chunks_still_returns_top_k(stack: LocalStack) -> None:
    wipe_stack(stack)
    api = Api(stack)
    # One paragraph per chunk: 99 noise documents and one needle of 10 chunks each.
    kb = api.create_kb("haystack", chunk_tokens=40, chunk_overlap=0)
    noise = (
        "Quarterly logistics report for warehouse {n}, section {s}: shipments, pallets,"
        " trucks and forklifts moved between the loading docks during the night shift."
    )
    for n in range(99):
        body = "\n\n".join(noise.format(n=n, s=s) for s in range(10))
        api.upload(kb["id"], f"noise-{n:02d}.md", body.encode())
    needle_text = "\n\n".join(
        f"Needle fact {s}: the lighthouse keeper logs the tide at dawn, checks the lamp,"
        " and writes the weather into the old leather book on the desk."
        for s in range(10)
    )
    needle = api.upload(kb["id"], "needle.md", needle_text.encode(), {"kind": "needle"})
    stack.wait_idle(300)
    total = stack.database.scalar("SELECT count(*) FROM chunks")
    mine = stack.database.scalar(
        "SELECT count(*) FROM chunks WHERE document_id = CAST(:d AS uuid)",
        d=needle["document_id"],
    )
    assert mine / total <= 0.011 and mine >= 8

    # The query matches the noise best, so an unfiltered top 40 holds no needle chunk.
    query = "warehouse shipments pallets trucks logistics"
    for filters in ({"metadata": {"kind": "needle"}}, {"document_ids": [needle["document_id"]]}):
        response = api.post(
            "/v1/retrieve",
            json={"knowledge_base_ids": [kb["id"]], "query": query, "top_k": 8, "filters": filters},
        )
        passages = body_of(response)["passages"]
        assert len(passages) == 8, filters
        assert {p["document_id"] for p in passages} == {needle["document_id"]}
    wipe_stack(stack)
