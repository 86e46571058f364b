"""Bulk ingestion at the embedding provider's rate limit: a thousand documents, one limit.

Every page of the 20 SEC 10-Q filings (``../shared/corpus/sec-10q``, 1,037 pages; the
text PDFium extracts) becomes a text document of its own. All of them are staged in the
uploads bucket (``<workspace>/<knowledge base>/<file>``) of a fresh local stack
(``LocalStack``: 4 bus and 4 task workers), then announced at once, one finalize event
each as after a bulk copy into the bucket, to a knowledge base that embeds with
``openai:text-embedding-3-small`` (256 dimensions) through the real ``openai`` client,
pointed at the rate-limited local server
(``scripts/localstack/openai_limits.py``: RPM and TPM over a sliding minute, 429 with
``Retry-After``, a fixed latency per request). The stack's settings carry the same
limits (``RAGLINE_EMBEDDING_*``), as Terraform gives them to a deployed instance.

Reported: the tokens per minute achieved as a share of the limit over the sustained
window (first to last embeddings request), the requests made against the fewest
possible (``max(ceil(tokens / tokens per request), ceil(inputs / 2,048))``, cl100k
tokens of every chunk), 429s and other retries, documents not ready, and wall time.

Usage::

    .venv/bin/python -m scripts.bench.bulk_ingest [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scripts.bench.common import CORPUS, median, write_section
from scripts.localstack.notifier import BucketNotifier
from scripts.localstack.openai_limits import LimitStats, RateLimitedEmbeddings

MODEL = "openai:text-embedding-3-small"
DIMENSION = 256
# The limits measured against: a fifth of OpenAI's tier 1's tokens, so that the pipeline
# of this 2-core machine makes chunks faster than the limit lets them be embedded (the
# run is bound by the limit, which is what is measured).
RPM = 500
TPM = 200_000
# Requests of at most a tenth of the minute: the sliding window then moves in steps of
# 10% at most (Terraform's derivation gives each instance the same granularity).
REQUEST_TOKENS = TPM // 10
LATENCY_S = 0.2
MIN_PAGE_CHARS = 200
# The code before requests were filled across versions and paced (measured beside ours).
BASELINE_REF = "c001c2b"  # a page with less text (a cover, a blank) is not a document


def page_texts(limit: int | None) -> list[tuple[str, str]]:
    """``(name, text)`` of every page of the corpus with text on it, in file order."""
    import pypdfium2 as pdfium

    pages: list[tuple[str, str]] = []
    for pdf_path in sorted(CORPUS.glob("*.pdf")):
        pdf = pdfium.PdfDocument(str(pdf_path))
        try:
            for number in range(len(pdf)):
                page = pdf[number]
                text = page.get_textpage().get_text_range().replace("\r\n", "\n").strip()
                if len(text) >= MIN_PAGE_CHARS:
                    pages.append((f"{pdf_path.stem} p{number + 1:03d}.txt", text))
        finally:
            pdf.close()
    return pages[:limit] if limit else pages


def sustained_share(stats: LimitStats, tpm: int) -> tuple[float, float]:
    """Tokens per minute from the first request to the last, as a share of ``tpm``.

    The last request's tokens are left out: the window ends when it starts.

    Returns:
        (share, window seconds).
    """
    accepted = stats.accepted
    if len(accepted) < 2:
        return math.nan, 0.0
    window = accepted[-1].at - accepted[0].at
    tokens = sum(request.tokens for request in accepted[:-1])
    return (tokens / (window / 60) / tpm if window > 0 else math.nan), window


def busiest_minute(stats: LimitStats) -> int:
    """The most tokens any sliding minute held (never above the limit)."""
    best, start, total = 0, 0, 0
    accepted = stats.accepted
    for request in accepted:
        total += request.tokens
        while accepted[start].at <= request.at - 60:
            total -= accepted[start].tokens
            start += 1
        best = max(best, total)
    return best


BASELINE_DRIVER = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from scripts.localstack.notifier import BucketNotifier
from scripts.localstack.stack import LocalStack, StackConfig
pages = json.loads(Path(sys.argv[1]).read_text())
config = StackConfig(
    data_dir=Path(sys.argv[2]), drop_folder=False, notify=False, sweep_interval_s=None
)
stack = LocalStack(config).start()
try:
    from werkzeug.test import Client
    client = Client(stack.as_owner())
    body = {"name": "bulk", "embedding_model": sys.argv[3],
            "embedding_dimensions": int(sys.argv[4])}
    kb_id = client.post("/v1/knowledge-bases", json=body).json["id"]
    folder = f"{stack.settings.default_workspace}/{kb_id}"
    bucket = stack.settings.upload_bucket
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(
            lambda p: stack.objects.upload_bytes(bucket, f"{folder}/{p[0]}", p[1].encode()), pages
        ))
    notifier = BucketNotifier(
        bucket, stack.host.storage_event, stack._dispatcher("eventarc", 2), stack.objects,
        max_attempts=stack.config.delivery.max_attempts,
    )
    started = time.perf_counter()
    notifier.poll_once()
    stack.wait_idle(7200, settle_s=1.0)
    finished = time.perf_counter()
    rows = stack.database.run(
        "SELECT status, count(*) FROM document_versions WHERE kb_id = CAST(:k AS uuid)"
        " GROUP BY status", k=kb_id,
    )
    statuses = {str(status): int(count) for status, count in rows}
    print("@@result@@" + json.dumps({"statuses": statuses, "wall_s": finished - started}))
finally:
    stack.stop()
"""


def run_baseline(ref: str, pages: list[tuple[str, str]]) -> dict[str, Any]:
    """The same ingestion with the code of ``ref`` (a temporary git worktree), same server."""
    import json
    import subprocess
    import sys

    from scripts.bench.common import ref_worktree

    with (
        RateLimitedEmbeddings(rpm=RPM, tpm=TPM, latency_s=LATENCY_S) as server,
        tempfile.TemporaryDirectory(prefix="ragline-bench-bulk-base-") as data,
        ref_worktree(ref) as tree,
    ):
        listing = Path(data) / "pages.json"
        listing.write_text(json.dumps(pages))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLINE_", "PYTHON"))}
        env.update({"OPENAI_API_KEY": "sk-local-bench", "OPENAI_BASE_URL": server.base_url})
        print(f"baseline at {ref} ...", flush=True)
        result = subprocess.run(
            [sys.executable, "-c", BASELINE_DRIVER, str(listing), str(Path(data) / "stack"),
             MODEL, str(DIMENSION)],
            cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=7200,
        )  # fmt: skip
        lines = [line for line in result.stdout.splitlines() if line.startswith("@@result@@")]
        if result.returncode != 0 or not lines:
            raise RuntimeError(f"the baseline failed:\n{result.stderr[-3000:]}")
        outcome = json.loads(lines[-1].removeprefix("@@result@@"))
        stats = server.stats()
    share, _ = sustained_share(stats, TPM)
    return {
        "ref": ref,
        "requests": stats.requests,
        "rate_limited": stats.rate_limited,
        "tokens_sent": stats.tokens,
        "tpm_share": share,
        "failed_documents": len(pages) - outcome["statuses"].get("ready", 0),
        "statuses": outcome["statuses"],
        "wall_s": outcome["wall_s"],
    }


def run(pages: list[tuple[str, str]]) -> dict[str, Any]:
    """Ingest the pages through a fresh stack against the limited server; return figures."""
    with (
        RateLimitedEmbeddings(rpm=RPM, tpm=TPM, latency_s=LATENCY_S) as server,
        tempfile.TemporaryDirectory(prefix="ragline-bench-bulk-") as data,
    ):
        os.environ.update(
            {
                "OPENAI_API_KEY": "sk-local-bench",
                "OPENAI_BASE_URL": server.base_url,
                "RAGLINE_EMBEDDING_RPM": str(RPM),
                "RAGLINE_EMBEDDING_TPM": str(TPM),
                "RAGLINE_EMBEDDING_REQUEST_TOKENS": str(REQUEST_TOKENS),
            }
        )
        from scripts.localstack.stack import LocalStack, StackConfig
        from shared.embeddings import get_embedder
        from shared.tokens import openai_counts_exact, openai_token_counts

        stack = LocalStack(
            StackConfig(data_dir=Path(data), drop_folder=False, notify=False, sweep_interval_s=None)
        ).start()
        try:
            from werkzeug.test import Client

            client = Client(stack.as_owner())
            created = client.post(
                "/v1/knowledge-bases",
                json={
                    "name": "bulk",
                    "embedding_model": MODEL,
                    "embedding_dimensions": DIMENSION,
                },
            )
            assert created.status_code == 201, created.get_data(as_text=True)
            kb_id = (created.json or {})["id"]
            print(f"staging {len(pages)} documents in the bucket ...", flush=True)
            folder = f"{stack.settings.default_workspace}/{kb_id}"
            staging = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(
                    pool.map(
                        lambda page: stack.objects.upload_bytes(
                            stack.settings.upload_bucket, f"{folder}/{page[0]}", page[1].encode()
                        ),
                        pages,
                    )
                )
            # Every object is announced at once, as after a bulk copy into the bucket.
            notifier = BucketNotifier(
                stack.settings.upload_bucket,
                stack.host.storage_event,
                stack._dispatcher("eventarc", 2),
                stack.objects,
                max_attempts=stack.config.delivery.max_attempts,
            )
            started = time.perf_counter()
            uploaded = staging
            notifier.poll_once()
            stack.wait_idle(3600, settle_s=1.0)
            finished = time.perf_counter()
            rows = stack.database.run(
                "SELECT status, count(*) FROM document_versions"
                " WHERE kb_id = CAST(:k AS uuid) GROUP BY status",
                k=kb_id,
            )
            statuses = {str(status): int(count) for status, count in rows}
            texts = [
                str(row[0])
                for row in stack.database.run(
                    "SELECT text FROM chunks WHERE kb_id = CAST(:k AS uuid)", k=kb_id
                )
            ]
            embedder = get_embedder(MODEL, DIMENSION)
            client_stats = getattr(embedder, "stats", None)
            stats = server.stats()
            counts = openai_token_counts(texts)
            exact = openai_counts_exact()
        finally:
            stack.stop()
    total_tokens = sum(counts)
    fewest = max(math.ceil(total_tokens / REQUEST_TOKENS), math.ceil(len(texts) / 2048))
    share, window = sustained_share(stats, TPM)
    return {
        "documents": len(pages),
        "statuses": statuses,
        "failed_documents": len(pages) - statuses.get("ready", 0),
        "chunks": len(texts),
        "tokens": total_tokens,
        "tokens_sent": stats.tokens,
        "exact_tokens": exact,
        "requests": stats.requests,
        "fewest_requests": fewest,
        "request_ratio_to_min": stats.requests / fewest if fewest else math.nan,
        "rate_limited": stats.rate_limited,
        "rejected": stats.rejected,
        "client_retries": getattr(client_stats, "retries", None),
        "client_requests": getattr(client_stats, "requests", None),
        "tpm_share": share,
        "sustained_window_s": window,
        "busiest_minute_tokens": busiest_minute(stats),
        "median_request_tokens": median([float(a.tokens) for a in stats.accepted]),
        "staging_s": started - uploaded,
        "wall_s": finished - started,
        "first_request_s": stats.accepted[0].at - started if stats.accepted else math.nan,
    }


def markdown(result: dict[str, Any]) -> str:
    """The report's section."""
    share = result["tpm_share"]
    ratio = result["request_ratio_to_min"]
    counted = (
        "exact, tiktoken with the offline vocabulary"
        if result["exact_tokens"]
        else "the UTF-8 byte bound: tiktoken's vocabulary was missing"
    )
    rows = [
        ("tokens per minute, first to last request, share of the limit", f"**{share:.1%}**",
         ">= 90%"),
        ("embeddings requests / fewest possible",
         f"{result['requests']:,} / {result['fewest_requests']:,} = **{ratio:.3f}**", "<= 1.10"),
        ("429s (client retries)", f"{result['rate_limited']} ({result['client_retries']})", ""),
        ("documents failed (not ready)", f"**{result['failed_documents']}**", "0"),
        ("chunks, tokens", f"{result['chunks']:,}, {result['tokens']:,}", ""),
        ("busiest sliding minute", f"{result['busiest_minute_tokens']:,} tokens",
         f"<= {TPM:,}"),
        ("median request", f"{result['median_request_tokens']:,.0f} tokens", ""),
        ("wall time (every object announced to idle)", f"{result['wall_s']:.1f} s", ""),
        ("sustained window (first to last request)", f"{result['sustained_window_s']:.1f} s",
         ""),
    ]  # fmt: skip
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    base = result.get("baseline")
    before = ""
    if base:
        before = f"""
The same run with the code before this (`{base["ref"]}`: one request per embed task,
packed by the UTF-8 byte bound, no pacing, backoff on 429), against a fresh server with
the same limits:

| measure | before | now | now / before |
|---|---|---|---|
| embeddings requests | {base["requests"]:,} | {result["requests"]:,} | {result["requests"] / base["requests"]:.3f} |
| 429s | {base["rate_limited"]:,} | {result["rate_limited"]:,} | |
| tokens per minute, share of the limit | {base["tpm_share"]:.1%} | {share:.1%} | {share / base["tpm_share"]:.2f} |
| documents failed | {base["failed_documents"]} | {result["failed_documents"]} | |
| wall time | {base["wall_s"]:.1f} s | {result["wall_s"]:.1f} s | {result["wall_s"] / base["wall_s"]:.2f} |

Its share above 100% is the sliding minute's start: a client that has sent nothing may
spend a whole minute's tokens at once, and the code before did, in requests of one
document each (the refused ones waited out their `Retry-After`), so it ended sooner.
The pacer spends the minute evenly from the start instead, one full request at a time:
that first-minute burst is what it gives up for requests as few as the tokens allow.
"""  # noqa: E501
    return f"""## Bulk ingestion at the rate limit

{result["documents"]:,} documents (every page of the 20 10-Q filings with text on it, one
text document each) staged in the uploads bucket of a fresh local stack and announced at
once (one finalize event each, as after a bulk copy), embedded with
`{MODEL}` ({DIMENSION} dimensions) by the real `openai` client against the local
rate-limited server (`scripts/localstack/openai_limits.py`): **{RPM:,} RPM, {TPM:,} TPM**
over a sliding minute, **{LATENCY_S * 1000:.0f} ms** added to every response, 429 with
`Retry-After` beyond the limits. The stack's settings carry the same limits
(`RAGLINE_EMBEDDING_RPM/TPM`) and {REQUEST_TOKENS:,} tokens per request (a tenth of the
minute). Tokens are cl100k_base ({counted}).

| measure | value | target |
|---|---|---|
{table}

{before}
"Fewest possible" is `max(ceil(T / R), ceil(N / 2048))` for the T cl100k tokens of the
N chunks and R tokens per request: no request carries more than R tokens or 2,048
inputs, so no schedule of requests can do with fewer. An embed task fills its request
with the waiting chunks of every version (`shared/pipeline/pooled.py`), so the count
follows the tokens, not the {result["documents"]:,} documents (one embed task each,
which made one request each before). The instance's pacer
(`shared/embeddings/pacer.py`) waits until what waits in the pool fits (up to a full
request), in a bucket refilled at the limit's rate and in the sliding minute, before the
request is gathered: none is refused, and in a backlog the chunks made while it waited
ride in it.
"""


def rerender() -> None:
    """Write ``docs/bench/bulk_ingest.md`` again from the saved figures."""
    import json

    from scripts.bench.common import RESULTS

    record = json.loads((RESULTS / "bulk_ingest.json").read_text())
    (RESULTS / "bulk_ingest.md").write_text(markdown(record["details"]).rstrip() + "\n")


def main() -> None:
    """Run the section and save ``docs/bench/bulk_ingest.json`` and ``.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 documents (smoke test)")
    parser.add_argument("--rerender", action="store_true", help="only rewrite the .md")
    parser.add_argument(
        "--baseline", default=BASELINE_REF, help="git ref measured beside ours ('' for none)"
    )
    args = parser.parse_args()
    if args.rerender:
        rerender()
        return
    pages = page_texts(200 if args.quick else None)
    result = run(pages)
    if args.baseline:
        result["baseline"] = run_baseline(args.baseline, pages)
    print({key: value for key, value in result.items() if not isinstance(value, dict)})
    metrics = {
        key: result[key]
        for key in (
            "tpm_share",
            "failed_documents",
            "request_ratio_to_min",
            "requests",
            "fewest_requests",
            "rate_limited",
            "client_retries",
            "documents",
            "chunks",
            "tokens",
            "wall_s",
        )
    }
    base = result.get("baseline")
    if base:
        metrics.update(
            {
                "baseline_requests": base["requests"],
                "baseline_rate_limited": base["rate_limited"],
                "baseline_failed_documents": base["failed_documents"],
                "baseline_tpm_share": base["tpm_share"],
                "baseline_wall_s": base["wall_s"],
                "requests_vs_baseline": result["requests"] / base["requests"],
                "wall_vs_baseline": result["wall_s"] / base["wall_s"],
            }
        )
    write_section(
        "bulk_ingest",
        metrics,
        markdown(result),
        settings={
            "rpm": RPM,
            "tpm": TPM,
            "request_tokens": REQUEST_TOKENS,
            "latency_s": LATENCY_S,
            "model": MODEL,
            "dimension": DIMENSION,
        },
        details=result,
    )


if __name__ == "__main__":
    main()
