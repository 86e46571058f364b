"""Answers over the real SEC 10-Q corpus cite the documents the analysts' questions are about."""

from __future__ import annotations

import csv
import fnmatch
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.answering.service import NOT_IN_DOCUMENTS
from shared.retrieval.search import Retrieval, RetrievalRequest, retrieve
from tests.support.api import Api, body_of
from tests.support.stack import wipe_stack


def _questions(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "questions_mini.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sec_kb(stack: LocalStack, corpus: Path) -> Iterator[str]:
    """All 20 filings in one knowledge base."""
    wipe_stack(stack)
    api = Api(stack)
    kb = api.create_kb("sec-10q")
    # Newest filings first: "latest" must come from the files' own dates, not from
    # the order they arrived in.
    for pdf in sorted(corpus.glob("*.pdf"), reverse=True):
        api.upload(kb["id"], pdf.name, pdf.read_bytes())
    stack.wait_idle(600)
    ready = stack.database.scalar(
        "SELECT count(*) FROM documents d JOIN document_versions v ON v.id = d.active_version_id"
        " WHERE v.status = 'ready'"
    )
    assert ready == 20
    dates: dict[str, str] = dict(
        stack.database.run(
            "SELECT d.filename, v.source_date::date::text FROM documents d"
            " JOIN document_versions v ON v.id = d.active_version_id"
        )
    )
    assert dates["2023 Q3 INTC.pdf"] == "2023-10-27" and dates["2022 Q3 AAPL.pdf"] == "2022-07-29"
    yield kb["id"]
    wipe_stack(stack)


def test_every_citation_points_into_the_questions_source_documents(
    stack: LocalStack, corpus: Path, sec_kb: str
) -> None:
    api = Api(stack)
    questions = _questions(corpus)
    assert len(questions) >= 5
    for row in questions:
        response = api.post(
            "/v1/ask", json={"knowledge_base_ids": [sec_kb], "question": row["Question"]}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        body: dict[str, Any] = response.json or {}
        cited = [citation["filename"] for citation in body["citations"]]
        assert cited, f"no citation for {row['Question']!r}"
        outside = [name for name in cited if not fnmatch.fnmatch(name, row["Source Docs"])]
        assert not outside, f"{row['Question']!r} cites {outside}, not {row['Source Docs']}"
        for citation in body["citations"]:
            assert f"[{citation['n']}]" in body["answer"]
            assert citation["page_start"] >= 1


@pytest.mark.parametrize(
    "question",
    [
        "What was Tesla's revenue in its most recent quarter?",
        "How did Netflix's subscriber count change over the reported quarters?",
    ],
)
def test_a_company_not_in_the_knowledge_base_gets_the_not_in_documents_answer(
    stack: LocalStack, sec_kb: str, question: str
) -> None:
    body = Api(stack).post("/v1/ask", json={"knowledge_base_ids": [sec_kb], "question": question})
    assert body.status_code == 200
    assert body_of(body)["answer"] == NOT_IN_DOCUMENTS
    assert body_of(body)["citations"] == []


EVAL_SET = Path(__file__).resolve().parents[1] / "data" / "sec10q_eval.csv"


def test_most_answers_to_the_eval_set_cite_only_the_expected_filings(
    stack: LocalStack, sec_kb: str
) -> None:
    """Questions naming quarters (fiscal or calendar), dates, "latest" or no company."""
    with EVAL_SET.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 60
    api = Api(stack)
    misses = []
    for row in rows:
        response = api.post(
            "/v1/ask", json={"knowledge_base_ids": [sec_kb], "question": row["question"]}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        cited = {citation["filename"] for citation in (response.json or {})["citations"]}
        globs = row["expected_sources"].split(";")
        if not cited or any(not any(fnmatch.fnmatch(n, g) for g in globs) for n in cited):
            misses.append(f"{row['question']!r} cites {sorted(cited)}")
    assert len(misses) <= 0.1 * len(rows), "\n".join(misses)


def test_each_filing_stores_the_period_its_cover_states(stack: LocalStack, sec_kb: str) -> None:
    periods = {
        name: (str(end), months, fiscal_end)
        for name, end, months, fiscal_end in stack.database.run(
            "SELECT d.filename, v.period_end, v.period_months, v.fiscal_year_end_month"
            " FROM documents d JOIN document_versions v ON v.id = d.active_version_id"
        )
    }
    assert periods["2023 Q1 AAPL.pdf"] == ("2022-12-31", 3, 9)
    assert periods["2022 Q3 MSFT.pdf"] == ("2022-09-30", 3, 6)
    assert periods["2023 Q3 NVDA.pdf"] == ("2023-10-29", 3, 1)
    assert periods["2023 Q2 INTC.pdf"] == ("2023-07-01", 3, 12)


def _retrieve(stack: LocalStack, kb_id: str, question: str) -> Retrieval:
    return retrieve(
        stack.database,
        RetrievalRequest(
            query=question, kb_ids=[kb_id], workspace=stack.settings.default_workspace, top_k=5
        ),
    )


def _ids(stack: LocalStack, *filenames: str) -> set[str]:
    rows = stack.database.run(
        "SELECT id::text FROM documents WHERE filename = ANY(:f)", f=list(filenames)
    )
    return {row[0] for row in rows}


@pytest.mark.parametrize(
    ("question", "narrowed_to"),
    [
        ("Apple's iPhone net sales in the first quarter of fiscal 2023?", ["2023 Q1 AAPL.pdf"]),
        ("Microsoft's revenue in the first quarter of fiscal year 2024?", ["2023 Q3 MSFT.pdf"]),
        ("NVIDIA's revenue in its 10-Q before the latest one?", ["2023 Q2 NVDA.pdf"]),
        ("What does 2023 Q2 INTC.pdf say about revenue?", ["2023 Q2 INTC.pdf"]),
    ],
)
def test_a_subject_with_a_period_narrows_to_its_filing(
    stack: LocalStack, sec_kb: str, question: str, narrowed_to: list[str]
) -> None:
    found = _retrieve(stack, sec_kb, question)
    assert set(found.routed_to or ()) == _ids(stack, *narrowed_to)
    assert {p.filename for p in found.passages} == set(narrowed_to)


def test_a_period_alone_prefers_its_filings_without_hiding_the_rest(
    stack: LocalStack, sec_kb: str
) -> None:
    found = _retrieve(stack, sec_kb, "What was revenue for the quarter ended April 30, 2023?")
    assert found.routed_to is None
    assert found.evidence is not None
    assert set(found.evidence.prefer or ()) == _ids(stack, "2023 Q1 NVDA.pdf")
    assert found.passages[0].filename == "2023 Q1 NVDA.pdf"
