"""Time the 20 sec-10q PDFs through the local pipeline, per stage.

Starts a fresh local stack in a temporary folder, uploads every PDF through the HTTP
API, waits until the pipeline is idle, and reads each version's stage timestamps:
parse = chunking_at - parsing_at, and so on (latency, queueing included), and the time
spent inside each step function (work). Wall time is first upload to last ready.

Usage: .venv/bin/python -m scripts.bench.pipeline_stages [--model hashing-384|minilm]
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from scripts.localstack.stack import LocalStack, StackConfig

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "sec-10q"
# Step functions as the handlers call them (module, attribute), timed in place.
STEP_FUNCTIONS = {
    "parse": ("functions.parse", "parse_version"),
    "chunk": ("functions.chunk", "chunk_version"),
    "embed": ("functions.embed", "embed_batch"),
    "index": ("functions.index", "index_version"),
}
STAGES = [
    ("parse", "parsing_at", "chunking_at"),
    ("chunk", "chunking_at", "embedding_at"),
    ("embed", "embedding_at", "indexing_at"),
    ("index", "indexing_at", "ready_at"),
]


@contextmanager
def timed_steps() -> Iterator[dict[str, float]]:
    """Accumulate the seconds spent inside each step function (work, not queueing)."""
    busy = dict.fromkeys(STEP_FUNCTIONS, 0.0)
    lock = threading.Lock()
    originals = []
    for step, (module_name, attribute) in STEP_FUNCTIONS.items():
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)
        originals.append((module, attribute, original))

        def timed(*args: Any, _step: str = step, _fn: Callable[..., Any] = original) -> Any:
            started = time.perf_counter()
            try:
                return _fn(*args)
            finally:
                with lock:
                    busy[_step] += time.perf_counter() - started

        setattr(module, attribute, timed)
    try:
        yield busy
    finally:
        for module, attribute, original in originals:
            setattr(module, attribute, original)


def run(model: str, corpus: Path) -> dict[str, object]:
    """Ingest the corpus on a fresh stack; return per-stage and end-to-end figures."""
    pdfs = sorted(corpus.glob("*.pdf"))
    with tempfile.TemporaryDirectory(prefix="ragline-bench-") as data:
        stack = LocalStack(StackConfig(data_dir=Path(data), drop_folder=False)).start()
        try:
            client = Client(stack.app)
            kb = client.post(
                "/v1/knowledge-bases", json={"name": "bench", "embedding_model": model}
            )
            kb_id = kb.json["id"]  # type: ignore[index]
            with timed_steps() as busy:
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
        durations = [(v[end] - v[start]).total_seconds() for v in versions if v[start] and v[end]]
        stages[name] = {
            # Seconds inside the step's function, summed over documents and batches.
            "work_s": round(busy[name], 2),
            "pages_per_s": round(pages / busy[name], 1) if busy[name] else None,
            "chunks_per_s": round(chunks / busy[name], 1) if busy[name] else None,
            # Stage latency per document from its timestamps (includes queueing).
            "median_latency_s": round(statistics.median(durations), 3) if durations else None,
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
