"""Answer quality on the 10-Q evaluation set: do answers cite only the expected filings?

What runs (the product's public paths only):

1. A fresh local stack (:class:`scripts.localstack.stack.LocalStack`); one knowledge
   base with the settings of a new knowledge base (``--routing`` overrides routing),
   the 20 filings of ``../shared/corpus/sec-10q`` uploaded through the HTTP API.
2. Each question of ``tests/data/sec10q_eval.csv`` is asked through ``POST /v1/ask``
   (the answerer the stack is configured with: the extractive one, no model here) and
   retrieved through :func:`shared.retrieval.search.retrieve` with ``top_k=5``.
3. Per question: the answer cites only expected filings (``expected_sources``: file-name
   globs separated by ``;``), and the top 5 passages come only from expected filings.

Usage: ``.venv/bin/python -m scripts.bench.quality [--routing auto|names|off]``
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from scripts.bench.common import CORPUS, REPO, cache_dir

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


def measure(routing: str | None) -> dict[str, Any]:
    """Ingest the filings into a fresh stack and score every question of the set."""
    from werkzeug.test import Client

    from scripts.localstack.stack import LocalStack, StackConfig
    from shared.retrieval.search import RetrievalRequest, retrieve

    data_dir = cache_dir("quality") / "stack"
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = LocalStack(
        StackConfig(data_dir=data_dir, drop_folder=False, notify=False, sweep_interval_s=None)
    ).start()
    try:
        client = Client(stack.as_owner())
        settings: dict[str, Any] = {"name": "sec-10q"}
        if routing:
            settings["routing"] = routing
        created = client.post("/v1/knowledge-bases", json=settings)
        assert created.status_code == 201, created.get_data(as_text=True)
        kb_id = str(created.json["id"])  # type: ignore[index]
        for pdf in sorted(CORPUS.glob("*.pdf")):
            with pdf.open("rb") as handle:
                response = client.post(
                    f"/v1/knowledge-bases/{kb_id}/documents", data={"file": (handle, pdf.name)}
                )
            assert response.status_code == 202, response.get_data(as_text=True)
        stack.wait_idle(1800)
        rows: list[dict[str, Any]] = []
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
    finally:
        stack.stop()
    total = len(rows)
    return {
        "questions": total,
        "routing": routing or "default",
        "answer_only_expected": round(sum(r["answer_only_expected"] for r in rows) / total, 3),
        "top5_only_expected": round(sum(r["top5_only_expected"] for r in rows) / total, 3),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the shares (details to ``.bench/quality/``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routing", choices=("auto", "names", "off"), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.routing)
    out = cache_dir("quality") / f"result-{result['routing']}.json"
    out.write_text(json.dumps(result, indent=1))
    for row in result["rows"]:
        if not row["answer_only_expected"]:
            print(f"MISS {row['question']!r}: cited {row['cited']}, expected {row['expected']}")
    print(
        f"routing={result['routing']}: answers citing only expected filings"
        f" {result['answer_only_expected']:.1%}, top-5 only expected"
        f" {result['top5_only_expected']:.1%} ({result['questions']} questions); {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
