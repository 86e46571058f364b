"""Source sync: a gcs source over a bucket prefix, synced through the whole local stack.

A fresh local stack (hashing embedder, so the figures are the orchestration's and the
pipeline's, not a model's) and a bucket of the GCS emulator holding ``--objects``
Markdown files. Through the HTTP API: create a ``gcs`` source of the prefix (its first
run adds every object), sync it again unchanged, then after changing and deleting a
tenth of the objects. Each figure is the time from the API call until the stack is idle
with every document ``ready``; the unchanged re-sync must download and parse nothing.

Usage: .venv/bin/python -m scripts.bench.source_sync [--objects 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench.common import write_section

BUCKET = "ragline-bench-sources"
PREFIX = "handbook/"


def _document(number: int, edition: int = 1) -> bytes:
    """A small Markdown document, distinct per number and edition."""
    body = "\n\n".join(
        f"Section {part} of policy {number} (edition {edition}): requests go to team"
        f" {number % 17}, are answered within {part + 2} days, and are logged."
        for part in range(1, 9)
    )
    return f"# Policy {number}\n\n{body}\n".encode()


def _parse_versions(stack: Any) -> set[str]:
    topic = stack.settings.topic_parse
    return {
        message["attributes"]["version_id"]
        for published, message in stack.bus.published
        if published == topic
    }


def _body(response: Any) -> dict[str, Any]:
    return dict(response.json or {})


def _timed_sync(stack: Any, client: Any, path: str, expect: int = 202) -> float:
    started = time.perf_counter()
    response = client.post(path)
    assert response.status_code == expect, response.get_data(as_text=True)
    stack.wait_idle(1800)
    return time.perf_counter() - started


def run(objects: int) -> dict[str, Any]:
    """Measure the four syncs; return the figures."""
    from werkzeug.test import Client

    from scripts.localstack.stack import LocalStack, StackConfig

    with tempfile.TemporaryDirectory() as data:
        env = {
            "RAGLINE_SOURCE_BUCKETS": json.dumps([BUCKET]),
            "RAGLINE_DEFAULT_EMBEDDING_MODEL": "hashing-384",
        }
        config = StackConfig(
            data_dir=Path(data), port=0, drop_folder=False, sweep_interval_s=None, env=env
        )
        stack = LocalStack(config).start()
        try:
            client = Client(stack.as_owner())
            gcs = stack.objects.client
            if gcs.lookup_bucket(BUCKET) is None:
                gcs.create_bucket(BUCKET)
            for number in range(objects):
                stack.objects.upload_bytes(BUCKET, f"{PREFIX}{number:05d}.md", _document(number))
            kb = _body(client.post("/v1/knowledge-bases", json={"name": "bench-sources"}))
            started = time.perf_counter()
            created = client.post(
                f"/v1/knowledge-bases/{kb['id']}/sources",
                json={"type": "gcs", "config": {"uri": f"gs://{BUCKET}/{PREFIX}"}},
            )
            assert created.status_code == 201, created.get_data(as_text=True)
            stack.wait_idle(3600)
            first_s = time.perf_counter() - started
            source_path = f"/v1/sources/{_body(created)['id']}"
            first = _body(client.get(source_path))

            parsed = len(_parse_versions(stack))
            unchanged_s = _timed_sync(stack, client, f"{source_path}/sync")
            unchanged = _body(client.get(source_path))
            parsed_unchanged = len(_parse_versions(stack)) - parsed

            tenth = max(1, objects // 10)
            for number in range(tenth):
                stack.objects.upload_bytes(
                    BUCKET, f"{PREFIX}{number:05d}.md", _document(number, edition=2)
                )
            for number in range(objects - tenth, objects):
                stack.objects.delete(BUCKET, f"{PREFIX}{number:05d}.md")
            changed_s = _timed_sync(stack, client, f"{source_path}/sync")
            changed = _body(client.get(source_path))
            listed = client.get(
                f"/v1/knowledge-bases/{kb['id']}/documents", query_string={"limit": 500}
            )
            documents = _body(listed)["documents"]
        finally:
            stack.stop()
    return {
        "objects": objects,
        "first_sync_s": round(first_s, 2),
        "first_sync_items_per_s": round(objects / first_s, 1),
        "first_counts": first["counts"],
        "unchanged_sync_s": round(unchanged_s, 2),
        "unchanged_items_per_s": round(objects / unchanged_s, 1),
        "unchanged_counts": unchanged["counts"],
        "unchanged_versions_parsed": parsed_unchanged,
        "changed_sync_s": round(changed_s, 2),
        "changed_counts": changed["counts"],
        "documents_after": len(documents),
        "ready_after": sum(1 for document in documents if document["status"] == "ready"),
    }


def report(figures: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md."""
    rows = [
        ("first sync (every object added)", "first_sync_s", "first_counts"),
        ("re-sync, nothing changed", "unchanged_sync_s", "unchanged_counts"),
        ("re-sync, a tenth changed and a tenth deleted", "changed_sync_s", "changed_counts"),
    ]
    lines = [
        "## Source sync (gcs prefix)",
        "",
        f"A `gcs` source over {figures['objects']} Markdown objects in the GCS emulator,"
        " synced through the local stack (hashing embedder); each time runs from the API"
        " call until every task is done and every document `ready`"
        " (`.venv/bin/python -m scripts.bench.source_sync`).",
        "",
        "| sync | seconds | counts |",
        "|---|---:|---|",
    ]
    for label, seconds, counts in rows:
        shown = ", ".join(f"{k} {v}" for k, v in figures[counts].items() if v)
        lines.append(f"| {label} | {figures[seconds]} | {shown} |")
    lines += [
        "",
        f"The unchanged re-sync sent {figures['unchanged_versions_parsed']} versions to parse"
        f" ({figures['unchanged_items_per_s']} items/s: one listing, then one generation"
        " check per object, nothing downloaded). After the last sync:"
        f" {figures['documents_after']} documents, {figures['ready_after']} ready.",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and write docs/bench/source_sync.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=200)
    args = parser.parse_args()
    figures = run(args.objects)
    markdown = report(figures)
    write_section(
        "source_sync",
        {key: value for key, value in figures.items() if not key.endswith("counts")},
        markdown,
        settings={"objects": args.objects, "embedding_model": "hashing-384"},
        details={key: value for key, value in figures.items() if key.endswith("counts")},
    )
    print(markdown)


if __name__ == "__main__":
    main()
