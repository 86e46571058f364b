"""Answer quality on the 10-Q evaluation set: do answers cite only the expected filings?

What runs (the product's public paths only):

1. A fresh local stack (:class:`scripts.localstack.stack.LocalStack`); one knowledge
   base with the settings of a new knowledge base,
   the 20 filings of ``../shared/corpus/sec-10q`` uploaded through the HTTP API.
2. Each question of ``tests/data/sec10q_eval.csv`` is asked through ``POST /v1/ask``
   (the answerer the stack is configured with: the extractive one, no model here) and
   retrieved through :func:`shared.retrieval.search.retrieve` with ``top_k=5``.
3. Per question: the answer cites only expected filings (``expected_sources``: file-name
   globs separated by ``;``), and the top 5 passages come only from expected filings.

The knowledge base is ingested once; each routing (the default, then the expert
overrides ``names`` and ``off``) is set through ``PATCH`` before its round of questions.

Usage: ``.venv/bin/python -m scripts.bench.quality [--routing auto|names|off ...]``
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from scripts.bench.common import CORPUS, REPO, cache_dir, write_section

EVAL_SET = REPO / "tests" / "data" / "sec10q_eval.csv"
TOP_K = 5

log = logging.getLogger(__name__)


def load_questions(path: Path = EVAL_SET) -> list[dict[str, str]]:
    """The evaluation set's rows (question, expected_sources, reference_answer, tags)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def only_expected(filenames: list[str], expected: str) -> bool:
    """True if there is a file name and every one matches one of the ``;``-separated globs."""
    globs = [glob.strip() for glob in expected.split(";") if glob.strip()]
    return bool(filenames) and all(
        any(fnmatch.fnmatch(name, glob) for glob in globs) for name in filenames
    )


def ask_all(client: Any, stack: Any, kb_id: str) -> list[dict[str, Any]]:
    """Every question of the set: what its answer cites, where its top 5 passages are."""
    from shared.retrieval.search import RetrievalRequest, retrieve

    rows = []
    for row in load_questions():
        answer = client.post(
            "/v1/ask", json={"knowledge_base_ids": [kb_id], "question": row["question"]}
        )
        body: dict[str, Any] = answer.json or {}
        cited = [c["filename"] for c in body.get("citations", [])]
        found = retrieve(
            stack.database,
            RetrievalRequest(
                query=row["question"],
                kb_ids=[kb_id],
                workspace=stack.settings.default_workspace,
                top_k=TOP_K,
            ),
        )
        top = [p.filename for p in found.passages]
        rows.append(
            {
                "question": row["question"],
                "tags": row["tags"],
                "expected": row["expected_sources"],
                "cited": sorted(set(cited)),
                "top5": sorted(set(top)),
                "answer_only_expected": only_expected(cited, row["expected_sources"]),
                "top5_only_expected": only_expected(top, row["expected_sources"]),
            }
        )
    return rows


def measure(routings: list[str | None]) -> dict[str, dict[str, Any]]:
    """Ingest the filings into a fresh stack once and score the set under each routing.

    ``None`` is the settings of a new knowledge base (nothing set).
    """
    from werkzeug.test import Client

    from scripts.localstack.stack import LocalStack, StackConfig

    data_dir = cache_dir("quality") / "stack"
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = LocalStack(
        StackConfig(data_dir=data_dir, drop_folder=False, notify=False, sweep_interval_s=None)
    ).start()
    results: dict[str, dict[str, Any]] = {}
    try:
        client = Client(stack.as_owner())
        created = client.post("/v1/knowledge-bases", json={"name": "sec-10q"})
        assert created.status_code == 201, created.get_data(as_text=True)
        kb_id = str(created.json["id"])  # type: ignore[index]
        default_routing = str(created.json["routing"])  # type: ignore[index]
        for pdf in sorted(CORPUS.glob("*.pdf")):
            with pdf.open("rb") as handle:
                response = client.post(
                    f"/v1/knowledge-bases/{kb_id}/documents", data={"file": (handle, pdf.name)}
                )
            assert response.status_code == 202, response.get_data(as_text=True)
        stack.wait_idle(1800)
        for routing in routings:
            chosen = routing or default_routing
            patched = client.patch(f"/v1/knowledge-bases/{kb_id}", json={"routing": chosen})
            assert patched.status_code == 200, patched.get_data(as_text=True)
            rows = ask_all(client, stack, kb_id)
            total = len(rows)
            results["default" if routing is None else routing] = {
                "questions": total,
                "routing": chosen,
                "answer_only_expected": round(
                    sum(r["answer_only_expected"] for r in rows) / total, 3
                ),
                "top5_only_expected": round(sum(r["top5_only_expected"] for r in rows) / total, 3),
                "rows": rows,
            }
    finally:
        stack.stop()
    return results


def report(results: dict[str, dict[str, Any]]) -> str:
    """The report section: one line per routing."""
    lines = [
        "## Answer quality (10-Q evaluation set)",
        "",
        f"The {results['default']['questions']} questions of `tests/data/sec10q_eval.csv`"
        ' (dates, fiscal and calendar quarters, halves, "latest" and "earlier",'
        " comparisons, no company named) asked through `POST /v1/ask` over the 20 filings"
        " of `../shared/corpus/sec-10q` (default embedder, extractive answers), and"
        " retrieved with `top_k=5`: the share of questions whose answer cites only"
        " expected filings, and whose top 5 passages come only from them"
        " (`scripts/bench/quality.py`).",
        "",
        "| routing | answers citing only expected filings | top 5 only from expected filings |",
        "|---|---|---|",
    ]
    for name, result in results.items():
        label = f"{result['routing']} (default)" if name == "default" else name
        lines.append(
            f"| {label} | **{result['answer_only_expected']:.1%}**"
            f" | {result['top5_only_expected']:.1%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the default and the expert overrides; write the ``quality`` section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--routing",
        choices=("auto", "names", "off"),
        action="append",
        help="measure only these routings (default: the default, names and off)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    routings: list[str | None] = args.routing or [None, "names", "off"]
    results = measure(routings)
    for name, result in results.items():
        for row in result["rows"]:
            if not row["answer_only_expected"] and name == "default":
                print(f"MISS {row['question']!r}: cited {row['cited']}, expected {row['expected']}")
        print(
            f"routing={name}: answers citing only expected filings"
            f" {result['answer_only_expected']:.1%}, top-5 only expected"
            f" {result['top5_only_expected']:.1%} ({result['questions']} questions)"
        )
    if "default" in results:
        metrics: dict[str, Any] = {
            "sec_own_set_only_expected": results["default"]["answer_only_expected"],
            "sec_own_set_top5_only_expected": results["default"]["top5_only_expected"],
            "sec_own_set_questions": results["default"]["questions"],
        }
        for name in ("names", "off"):
            if name in results:
                metrics[f"sec_own_set_only_expected_routing_{name}"] = results[name][
                    "answer_only_expected"
                ]
                metrics[f"sec_own_set_top5_only_expected_routing_{name}"] = results[name][
                    "top5_only_expected"
                ]
        write_section(
            "quality",
            metrics,
            report(results),
            settings={"eval_set": str(EVAL_SET.relative_to(REPO)), "top_k": TOP_K},
            details={name: result["rows"] for name, result in results.items()},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
