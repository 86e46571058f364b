"""The evaluation harness end to end on real 10-Q filings through the local stack.

A question set (tests/data/evalharness_10q.csv) runs through
``POST /v1/knowledge-bases/{kb}/evaluations``; the stored numbers are checked against
what this test computes itself from ``/v1/retrieve``, the document listing and the
turns' stored citations. A second run after switching the knowledge base's routing off
is compared with the first, through the API and through ``scripts/ragline eval``.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import string
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of, owner_token, token_for
from tests.support.stack import served, wipe_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = REPO_ROOT / "tests" / "data" / "evalharness_10q.csv"
FILINGS = ("2023 Q2 AAPL.pdf", "2023 Q3 AAPL.pdf", "2023 Q3 NVDA.pdf")


@pytest.fixture(scope="module")
def filings_kb(stack: LocalStack, corpus: Path) -> Iterator[dict[str, Any]]:
    """Three filings in one knowledge base; its id and each file's document id."""
    wipe_stack(stack)
    api = Api(stack)
    kb = api.create_kb("filings")
    for name in FILINGS:
        api.upload(kb["id"], name, (corpus / name).read_bytes())
    stack.wait_idle(600)
    listed = body_of(api.get(f"/v1/knowledge-bases/{kb['id']}/documents"))["documents"]
    assert {d["status"] for d in listed} == {"ready"} and len(listed) == 3
    yield {"kb": kb, "documents": {d["filename"]: d["id"] for d in listed}}
    wipe_stack(stack)


def _expected(documents: dict[str, str], globs: list[str]) -> set[str]:
    return {
        document_id
        for filename, document_id in documents.items()
        for glob in globs
        if fnmatch.fnmatch(filename.lower(), glob.lower())
        or fnmatch.fnmatch(filename.lower().removesuffix(".pdf"), glob.lower())
    }


def _ndcg10(ranked: list[str], relevant: set[str]) -> float:
    gains = [1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant]
    ideal = [1.0 / math.log2(i + 2) for i in range(min(len(relevant), 10))]
    return sum(gains) / sum(ideal)


def _f1(answer: str, reference: str) -> float:
    def tokens(text: str) -> list[str]:
        text = re.sub(r"\[[\d,\s]+\]", " ", text).lower()
        text = "".join(ch for ch in text if ch not in string.punctuation)
        return [t for t in text.split() if t not in {"a", "an", "the"}]

    found, wanted = tokens(answer), tokens(reference)
    common = sum((Counter(found) & Counter(wanted)).values())
    if not common:
        return 0.0
    p, r = common / len(found), common / len(wanted)
    return 2 * p * r / (p + r)


def _ranked(api: Api, kb_id: str, question: str, top_k: int) -> list[str]:
    response = api.post(
        "/v1/retrieve",
        json={"knowledge_base_ids": [kb_id], "query": question, "top_k": max(top_k, 10)},
    )
    return list(dict.fromkeys(p["document_id"] for p in body_of(response)["passages"]))


def _check_question(
    api: Api, kb_id: str, documents: dict[str, str], result: dict[str, Any], top_k: int
) -> None:
    """Recompute one question's metrics from the API and compare with the stored ones."""
    metrics = result["metrics"]
    relevant = _expected(documents, result["expected_sources"])
    assert metrics["expected_documents"] == len(relevant)
    ranked = _ranked(api, kb_id, result["question"], top_k)
    names = {document_id: name for name, document_id in documents.items()}
    assert result["retrieved_documents"] == [names[d] for d in ranked]
    citations = body_of(api.get(f"/v1/turns/{result['turn_id']}/citations"))["citations"]
    cited = list(dict.fromkeys(c["document_id"] for c in citations))
    assert result["cited_documents"] == [names[d] for d in cited]
    assert metrics["citations"] == len(citations)
    assert metrics["unsupported_citations"] == sum(not c["supported"] for c in citations)
    if relevant:
        assert metrics["ndcg_at_10"] == pytest.approx(_ndcg10(ranked, relevant))
        assert metrics["recall_at_k"] == pytest.approx(
            len(set(ranked[:top_k]) & relevant) / len(relevant)
        )
        assert metrics["source_recall"] == pytest.approx(len(set(cited) & relevant) / len(relevant))
        assert metrics["cites_only_expected"] == (bool(cited) and set(cited) <= relevant)
    else:
        assert metrics["ndcg_at_10"] is None and metrics["cites_only_expected"] == (not cited)
    if cited:
        assert metrics["source_precision"] == pytest.approx(len(set(cited) & relevant) / len(cited))
    if result["reference_answer"]:
        assert metrics["answer_f1"] == pytest.approx(
            _f1(result["answer"], result["reference_answer"])
        )
    else:
        assert metrics["answer_f1"] is None


def test_a_run_scores_each_question_as_computed_independently(
    stack: LocalStack, filings_kb: dict[str, Any]
) -> None:
    api = Api(stack)
    kb_id, documents = filings_kb["kb"]["id"], filings_kb["documents"]
    response = api.post(
        f"/v1/knowledge-bases/{kb_id}/evaluations",
        json={"csv": QUESTIONS.read_text(), "top_k": 4, "name": "first"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    run = body_of(response)
    assert run["status"] == "completed" and run["question_count"] == 5
    assert run["settings"]["top_k"] == 4 and run["settings"]["routing"] == "auto"
    results = run["results"]
    assert [r["status"] for r in results] == ["answered"] * 5
    assert results[0]["expected_sources"] == ["2023 Q3 AAPL.pdf"]
    assert results[0]["tags"] == ["aapl", "table"]

    # Every question's numbers, recomputed from what the API shows.
    for result in results:
        _check_question(api, kb_id, documents, result, top_k=4)
    # Apple's July quarter is routed to Apple's filings: both are among the first two.
    # By hand: Apple's July quarter finds its filing first (nDCG 1), cites only it.
    first = results[0]
    assert first["retrieved_documents"][0] == "2023 Q3 AAPL.pdf"
    assert first["metrics"]["ndcg_at_10"] == 1.0 and first["metrics"]["recall_at_k"] == 1.0
    assert first["cited_documents"] == ["2023 Q3 AAPL.pdf"]
    assert first["metrics"]["source_precision"] == 1.0
    assert results[1]["metrics"]["expected_documents"] == 2  # *AAPL*: both filings
    # The extractive answerer quotes its passages: every citation is supported.
    assert all(r["metrics"]["unsupported_citations"] == 0 for r in results)
    # The question about Tesla: nothing relevant, so nothing cited.
    assert results[4]["metrics"]["cites_only_expected"] is True

    summary = run["summary"]
    answered = [r["metrics"] for r in results]
    assert summary["answered"] == 5 and summary["skipped"] == 0
    assert summary["cites_only_expected_rate"] == pytest.approx(
        sum(m["cites_only_expected"] for m in answered) / 5
    )
    ndcgs = [m["ndcg_at_10"] for m in answered if m["ndcg_at_10"] is not None]
    assert summary["ndcg_at_10"] == pytest.approx(sum(ndcgs) / len(ndcgs))
    total = sum(m["citations"] for m in answered)
    unsupported = sum(m["unsupported_citations"] for m in answered)
    assert summary["citations"] == total and summary["unsupported_citations"] == unsupported
    assert summary["unsupported_citation_rate"] == (unsupported / total if total else None)

    listed = body_of(api.get(f"/v1/knowledge-bases/{kb_id}/evaluations"))["evaluations"]
    assert [r["id"] for r in listed][:1] == [run["id"]]
    assert body_of(api.get(f"/v1/evaluations/{run['id']}")) == run


def test_two_runs_compare_after_a_setting_changes_and_the_cli_prints_them(
    stack: LocalStack, filings_kb: dict[str, Any], tmp_path: Path
) -> None:
    api = Api(stack)
    kb_id = filings_kb["kb"]["id"]
    body = {"csv": QUESTIONS.read_text(), "top_k": 4}
    before = body_of(api.post(f"/v1/knowledge-bases/{kb_id}/evaluations", json=body))
    assert api.patch(f"/v1/knowledge-bases/{kb_id}", json={"routing": "off"}).status_code == 200
    try:
        after = body_of(api.post(f"/v1/knowledge-bases/{kb_id}/evaluations", json=body))
        assert after["settings"]["routing"] == "off"
        diff = body_of(api.get(f"/v1/evaluations/{before['id']}/compare/{after['id']}"))
        assert diff["before"]["id"] == before["id"] and diff["after"]["id"] == after["id"]
        assert len(diff["questions"]) == 5
        # Each verdict follows from the two runs' own numbers.
        directions = {
            "cites_only_expected": 1, "source_precision": 1, "source_recall": 1,
            "ndcg_at_10": 1, "recall_at_k": 1, "answer_f1": 1, "unsupported_citation_rate": -1,
        }  # fmt: skip
        pairs = zip(diff["questions"], before["results"], after["results"], strict=True)
        for row, old, new in pairs:
            assert row["question"] == old["question"] == new["question"]
            moves = set()
            for name, sign in directions.items():
                a, b = old["metrics"][name], new["metrics"][name]
                if a is not None and b is not None and float(a) != pytest.approx(float(b)):
                    moves.add("better" if (float(b) - float(a)) * sign > 0 else "worse")
            expected = "mixed" if len(moves) == 2 else moves.pop() if moves else "same"
            assert row["verdict"] == expected, row
        # Without routing, NVIDIA's revenue question is answered from other passages.
        assert sum(n for verdict, n in diff["verdicts"].items() if verdict != "same") >= 1
        assert diff["overall"]["ndcg_at_10"]["delta"] == pytest.approx(
            after["summary"]["ndcg_at_10"] - before["summary"]["ndcg_at_10"]
        )

        # The CLI: a table, a JSON file, and the comparison with an earlier run.
        out = tmp_path / "run.json"
        with served(stack.app) as base_url:
            done = subprocess.run(
                [sys.executable, "-m", "scripts.cli", "eval", str(QUESTIONS), "--kb", "filings",
                 "--top-k", "4", "--json", str(out), "--compare", after["id"], "--url", base_url],
                cwd=REPO_ROOT,
                env={**os.environ, "RAGLINE_TOKEN": owner_token(stack)},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "nDCG@10" in done.stdout and "overall" in done.stdout
        assert f"compared with run {after['id']}" in done.stdout
        written = json.loads(out.read_text())
        assert written["run"]["status"] == "completed"
        # Same settings, same deterministic answers: nothing changed since the last run.
        assert set(written["comparison"]["verdicts"]) == {"same"}
        assert written["run"]["summary"] == after["summary"]
    finally:
        api.patch(f"/v1/knowledge-bases/{kb_id}", json={"routing": "auto"})


def test_the_old_tools_question_file_runs_as_it_is(
    stack: LocalStack, filings_kb: dict[str, Any], corpus: Path
) -> None:
    api = Api(stack)
    kb_id = filings_kb["kb"]["id"]
    text = (corpus / "questions_mini.csv").read_text(encoding="utf-8")
    run = body_of(api.post(f"/v1/knowledge-bases/{kb_id}/evaluations", json={"csv": text}))
    assert run["status"] == "completed" and run["question_count"] == 9
    by_source: dict[str, list[dict[str, Any]]] = {}
    for result in run["results"]:
        by_source.setdefault(result["expected_sources"][0], []).append(result)
        assert result["reference_answer"] and result["tags"][0].endswith("RAG")
    # *AAPL* names both Apple filings here; the Intel and Amazon filings are not loaded.
    assert {r["metrics"]["expected_documents"] for r in by_source["*AAPL*"]} == {2}
    assert by_source["*2023 Q3 INTC*"][0]["metrics"]["expected_documents"] == 0
    assert by_source["*2023 Q3 INTC*"][0]["metrics"]["ndcg_at_10"] is None
    for result in by_source["*AAPL*"]:
        assert result["metrics"]["answer_f1"] is not None


def test_evaluations_follow_the_knowledge_bases_access(
    stack: LocalStack, filings_kb: dict[str, Any]
) -> None:
    owner = Api(stack)
    kb_id = filings_kb["kb"]["id"]
    run = body_of(
        owner.post(
            f"/v1/knowledge-bases/{kb_id}/evaluations",
            json={
                "questions": [
                    {"question": "What was NVIDIA's revenue?", "expected_sources": ["*NVDA*"]}
                ]
            },
        )
    )
    email = "eval-viewer@example.org"
    invited = owner.post(
        f"/v1/workspaces/{stack.settings.default_workspace}/members",
        json={"email": email, "role": "viewer"},
    )
    assert invited.status_code == 201, invited.get_data(as_text=True)
    viewer = Api(stack, token_for(stack, "eval-viewer", email=email))
    assert body_of(viewer.get(f"/v1/evaluations/{run['id']}"))["id"] == run["id"]
    refused = viewer.post(
        f"/v1/knowledge-bases/{kb_id}/evaluations", json={"questions": [{"question": "Q?"}]}
    )
    assert refused.status_code == 403

    assert owner.post("/v1/workspaces", json={"name": "elsewhere"}).status_code == 201
    outsider = Api(stack, owner.token, workspace="elsewhere")
    for path in (
        f"/v1/evaluations/{run['id']}",
        f"/v1/evaluations/{run['id']}/compare/{run['id']}",
    ):
        missing = outsider.get(path)
        assert (
            missing.status_code == 404
            and body_of(missing)["error"]["code"] == "evaluation_not_found"
        )
    assert outsider.get(f"/v1/knowledge-bases/{kb_id}/evaluations").status_code == 404
    bad = owner.post(f"/v1/knowledge-bases/{kb_id}/evaluations", json={"csv": "prompt\nhi\n"})
    assert bad.status_code == 400 and body_of(bad)["error"]["code"] == "invalid_questions"


def test_a_run_out_of_time_skips_the_rest_and_is_incomplete(
    stack: LocalStack, filings_kb: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(stack)
    kb_id = filings_kb["kb"]["id"]
    # A deadline already passed when the run starts: no question is begun.
    monkeypatch.setattr(
        stack.runtime,
        "settings",
        stack.runtime.settings.model_copy(update={"answer_deadline_s": 0}),
    )
    run = body_of(
        api.post(f"/v1/knowledge-bases/{kb_id}/evaluations", json={"csv": QUESTIONS.read_text()})
    )
    assert run["status"] == "incomplete"
    assert [r["status"] for r in run["results"]] == ["skipped"] * 5
    assert run["summary"]["skipped"] == 5 and run["summary"]["answered"] == 0
    assert run["summary"]["ndcg_at_10"] is None


def test_deleting_a_knowledge_base_deletes_its_runs(stack: LocalStack) -> None:
    api = Api(stack)
    kb = api.create_kb("scratch-eval")
    api.ingest(kb["id"], "note.md", b"The harbour office counts cargo every night.")
    run = body_of(
        api.post(
            f"/v1/knowledge-bases/{kb['id']}/evaluations",
            json={"questions": [{"question": "Who counts cargo?", "expected_sources": "note.md"}]},
        )
    )
    assert run["results"][0]["metrics"]["cites_only_expected"] is True
    assert api.delete(f"/v1/knowledge-bases/{kb['id']}").status_code == 204
    stack.wait_idle(60)
    assert api.get(f"/v1/evaluations/{run['id']}").status_code == 404
    count = "SELECT count(*) FROM {} WHERE {} = CAST(:r AS uuid)"
    for table, column in (("evaluation_runs", "id"), ("evaluation_results", "run_id")):
        assert stack.database.scalar(count.format(table, column), r=run["id"]) == 0
