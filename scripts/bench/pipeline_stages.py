"""Time the 20 sec-10q PDFs through the local pipeline, per stage.

Starts a fresh local stack in a temporary folder, uploads every PDF through the HTTP
API, waits until the pipeline is idle, and reads each version's stage timestamps:
parse = chunking_at - parsing_at, chunk = embedding_at - chunking_at, and so on. Stage
times are summed over documents (work done); wall time is first upload to last ready.

Usage: .venv/bin/python -m scripts.bench.pipeline_stages [--model hashing-384|minilm]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from werkzeug.test import Client

from scripts.localstack.stack import LocalStack, StackConfig

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "sec-10q"
STAGES = [
    ("parse", "parsing_at", "chunking_at"),
    ("chunk", "chunking_at", "embedding_at"),
    ("embed", "embedding_at", "indexing_at"),
    ("index", "indexing_at", "ready_at"),
]


def run(model: str, corpus: Path) -> dict[str, object]:
    """Ingest the corpus on a fresh stack; return per-stage and end-to-end figures."""
    pdfs = sorted(corpus.glob("*.pdf"))
    with tempfile.TemporaryDirectory(prefix="ragline-bench-") as data:
        stack = LocalStack(StackConfig(data_dir=Path(data), drop_folder=False)).start()
        try:
            client = Client(stack.app)
            kb = client.post("/v1/knowledge-bases", json={"name": "bench", "embedding_model": model})
            kb_id = kb.json["id"]  # type: ignore[index]
            started = time.perf_counter()
            for pdf in pdfs:
                form = {"file": (io.BytesIO(pdf.read_bytes()), pdf.name)}
                response = client.post(f"/v1/knowledge-bases/{kb_id}/documents", data=form)
                assert response.status_code == 202, response.get_data(as_text=True)
            stack.wait_idle(3600, settle_s=0.5)
            wall = time.perf_counter() - started
            rows = stack.database.run(
                "SELECT status, page_count, chunk_count, received_at, parsing_at, chunking_at,"
                " embedding_at, indexing_at, ready_at FROM document_versions"
            )
        finally:
            stack.stop()
    columns = ["status", "pages", "chunks", "received_at", "parsing_at", "chunking_at",
               "embedding_at", "indexing_at", "ready_at"]  # fmt: skip
    versions = [dict(zip(columns, row, strict=True)) for row in rows]
    pages = sum(v["pages"] or 0 for v in versions)
    chunks = sum(v["chunks"] or 0 for v in versions)
    stages = {}
    for name, start, end in STAGES:
        durations = [
            (v[end] - v[start]).total_seconds() for v in versions if v[start] and v[end]
        ]
        stages[name] = {
            "sum_s": round(sum(durations), 2),
            "median_s": round(statistics.median(durations), 3) if durations else None,
            "pages_per_s": round(pages / sum(durations), 1) if sum(durations) else None,
        }
    return {
        "model": model,
        "documents": len(versions),
        "ready": sum(1 for v in versions if v["status"] == "ready"),
        "pages": pages,
        "chunks": chunks,
        "wall_s": round(wall, 2),
        "pages_per_s": round(pages / wall, 1),
        "chunks_per_s": round(chunks / wall, 1),
        "stages": stages,
    }


def main() -> None:
    """Run and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="hashing-384")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    print(json.dumps(run(args.model, args.corpus), indent=2))


if __name__ == "__main__":
    main()
