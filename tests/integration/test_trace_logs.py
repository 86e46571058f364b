"""One document's journey is one trace, in the JSON log lines Cloud Logging receives.

A document uploaded through the real stack runs through upload, parse, chunk, embed and
index (and the bucket's event for its object); every log record is rendered by the
functions' own JSON formatter (shared/log.py). Every line about the document's version
must name the trace the upload came with (``traceparent``, ``X-Cloud-Trace-Context``,
or a new one), with a span of its own per function.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scripts.localstack.stack import LocalStack
from shared import trace_export
from shared.log import SAMPLED_FIELD, SPAN_FIELD, TRACE_FIELD
from tests.support.api import Api
from tests.support.logs import captured_entries

NOTE = "# Field notes\n\n" + "Every detail is written down carefully and checked twice. " * 60
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
STEPS = {"upload", "parse", "chunk", "embed", "index"}


@pytest.fixture
def entries(clean_stack: LocalStack) -> Iterator[list[dict[str, Any]]]:
    """The JSON entries written while the test runs."""
    with captured_entries() as written:
        yield written


def _upload(stack: LocalStack, headers: dict[str, str]) -> dict[str, Any]:
    api = Api(stack)
    kb = api.create_kb("traced")
    response = api.post(
        f"/v1/knowledge-bases/{kb['id']}/documents",
        data={"file": (io.BytesIO(NOTE.encode()), "notes.md")},
        headers=headers,
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    accepted = dict(response.json or {})
    stack.wait_idle(180)
    assert api.document(accepted["document_id"])["status"] == "ready"
    return {**accepted, "kb_id": kb["id"]}


def _journey(entries: list[dict[str, Any]], version_id: str) -> list[dict[str, Any]]:
    lines = [e for e in entries if e.get("version_id") == version_id]
    functions = {e.get("function") for e in lines}
    assert functions >= STEPS, f"lines of the version came from {functions}"
    return lines


def _assert_one_trace(lines: list[dict[str, Any]], trace: str) -> None:
    traces = {e.get(TRACE_FIELD) for e in lines}
    assert traces == {trace}, [
        (e.get("function"), e.get("message"), e.get(TRACE_FIELD)) for e in lines
    ]
    # One span per invocation: the steps' lines name different spans.
    spans_by_function: dict[str, set[str]] = {}
    for entry in lines:
        span = entry[SPAN_FIELD]
        assert re.fullmatch(r"[0-9a-f]{16}", span), span
        spans_by_function.setdefault(entry["function"], set()).add(span)
    for a in STEPS:
        for b in STEPS - {a}:
            assert not spans_by_function[a] & spans_by_function[b], (a, b)


def _request_line(entries: list[dict[str, Any]], path: str) -> dict[str, Any]:
    found = [e for e in entries if "httpRequest" in e and e["httpRequest"]["requestUrl"] == path]
    assert len(found) == 1, [e.get("httpRequest") for e in entries if "httpRequest" in e]
    return found[0]


def test_an_upload_with_traceparent_is_one_trace_through_every_step(
    clean_stack: LocalStack, entries: list[dict[str, Any]]
) -> None:
    sent = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
    accepted = _upload(clean_stack, {"traceparent": sent, "User-Agent": "trace-test/1"})
    trace = f"projects/{clean_stack.settings.project}/traces/{TRACE_ID}"
    lines = _journey(entries, accepted["version_id"])
    _assert_one_trace(lines, trace)
    assert all(e[SAMPLED_FIELD] is True for e in lines)
    assert CALLER_SPAN not in {e[SPAN_FIELD] for e in lines}
    # The invocation's ids ride on lines that did not name them.
    # (A redelivered message's attempt did nothing: it is "skipped" and names no document.)
    step_lines = [e for e in lines if e["message"] == "step finished" and e["outcome"] == "ok"]
    assert {e["function"] for e in step_lines} >= STEPS - {"upload"}
    for entry in step_lines:
        assert entry["document_id"] == accepted["document_id"], entry
        assert entry["kb_id"] == accepted["kb_id"], entry

    request = _request_line(entries, f"/v1/knowledge-bases/{accepted['kb_id']}/documents")
    assert request["severity"] == "INFO"
    assert request[TRACE_FIELD] == trace
    assert request["function"] == "upload"
    assert request["document_id"] == accepted["document_id"]
    assert request["version_id"] == accepted["version_id"]
    assert request["workspace"]
    http = request["httpRequest"]
    assert http["requestMethod"] == "POST" and http["status"] == 202
    assert re.fullmatch(r"\d+\.\d{3}s", http["latency"])
    assert http["userAgent"] == "trace-test/1"
    assert http["remoteIp"] == "127.0.0.1"
    assert int(http["responseSize"]) > 0


def test_x_cloud_trace_context_names_the_trace(
    clean_stack: LocalStack, entries: list[dict[str, Any]]
) -> None:
    trace_id = "105445AA7843BC8BF206B12000100000"
    accepted = _upload(clean_stack, {"X-Cloud-Trace-Context": f"{trace_id}/1;o=1"})
    lines = _journey(entries, accepted["version_id"])
    _assert_one_trace(lines, f"projects/{clean_stack.settings.project}/traces/{trace_id.lower()}")
    assert "0000000000000001" not in {e[SPAN_FIELD] for e in lines}


def test_without_a_trace_header_a_new_trace_still_spans_every_step(
    clean_stack: LocalStack, entries: list[dict[str, Any]]
) -> None:
    accepted = _upload(clean_stack, {})
    lines = _journey(entries, accepted["version_id"])
    trace = lines[0][TRACE_FIELD]
    prefix = f"projects/{clean_stack.settings.project}/traces/"
    assert trace.startswith(prefix) and re.fullmatch(r"[0-9a-f]{32}", trace[len(prefix) :])
    assert trace != prefix + TRACE_ID
    _assert_one_trace(lines, trace)


def test_request_lines_drop_credentials_and_5xx_is_an_error(
    clean_stack: LocalStack, entries: list[dict[str, Any]]
) -> None:
    api = Api(clean_stack, token="")
    response = api.get(
        "/v1/documents/00000000-0000-0000-0000-000000000000/events"
        "?ticket=s3cret-ticket&after=7&api_key=k3y"
    )
    assert response.status_code == 401
    line = _request_line(
        entries, "/v1/documents/00000000-0000-0000-0000-000000000000/events?after=7"
    )
    assert line["severity"] == "INFO" and line["httpRequest"]["status"] == 401
    assert "s3cret" not in json.dumps(entries) and "k3y" not in json.dumps(entries)


def test_a_streamed_answer_logs_inside_its_trace_and_its_request_at_the_end(
    clean_stack: LocalStack, entries: list[dict[str, Any]]
) -> None:
    accepted = _upload(clean_stack, {})
    entries.clear()
    api = Api(clean_stack)
    response = api.post(
        "/v1/ask",
        json={"knowledge_base_ids": [accepted["kb_id"]], "question": "What is written down?"},
        headers={
            "Accept": "text/event-stream",
            "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-00",
            "X-Forwarded-For": "203.0.113.9, 10.0.0.1",
        },
    )
    body = response.get_data(as_text=True)
    response.close()
    assert response.status_code == 200 and "event: done" in body
    trace = f"projects/{clean_stack.settings.project}/traces/{TRACE_ID}"
    finished = [e for e in entries if e["message"] == "answer finished"]
    assert len(finished) == 1
    assert finished[0][TRACE_FIELD] == trace and finished[0]["function"] == "answer"
    assert finished[0][SAMPLED_FIELD] is False
    request = _request_line(entries, "/v1/ask")
    assert request[TRACE_FIELD] == trace and request["turn_id"] == finished[0]["turn_id"]
    assert request["httpRequest"]["remoteIp"] == "203.0.113.9"
    assert int(request["httpRequest"]["responseSize"]) == len(body.encode())


def test_exported_spans_of_every_step_carry_the_propagated_trace(
    clean_stack: LocalStack, entries: list[dict[str, Any]]
) -> None:
    exporter = InMemorySpanExporter()
    # What RAGLINE_TRACE_EXPORT installs, with an exporter that keeps the spans here.
    trace_export.install_exporter(exporter)
    try:
        accepted = _upload(clean_stack, {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
        spans = exporter.get_finished_spans()
    finally:
        exporter.shutdown()
    steps = [s for s in spans if s.name.startswith("ragline.pipeline.")]
    assert {s.name for s in steps} >= {f"ragline.pipeline.{step}" for step in STEPS - {"upload"}}
    assert {format(s.context.trace_id, "032x") for s in steps} == {TRACE_ID}
    functions = {s.name: s for s in spans if s.name.startswith("ragline.function.")}
    assert {f"ragline.function.{step}" for step in STEPS} <= set(functions)
    # Every invocation about the document (the bucket's event for its object included)
    # is in the sent trace; only the test's own API calls start traces of their own.
    journey = {f"ragline.function.{step}" for step in (*STEPS, "ingest")}
    assert {format(s.context.trace_id, "032x") for s in spans if s.name in journey} == {TRACE_ID}
    upload = functions["ragline.function.upload"]
    assert upload.parent is not None and format(upload.parent.span_id, "016x") == CALLER_SPAN
    # A step's log lines name its function span, which is what traceparent carried on.
    parse = functions["ragline.function.parse"]
    assert format(parse.context.trace_id, "032x") == TRACE_ID
    parse_lines = [
        e
        for e in entries
        if e.get("function") == "parse" and e.get("version_id") == accepted["version_id"]
    ]
    assert {e[SPAN_FIELD] for e in parse_lines} <= {
        format(s.context.span_id, "016x") for s in spans if s.name == "ragline.function.parse"
    }
    # Its parent: the upload, or the bucket event's ingest (which continues the upload).
    assert parse.parent is not None and parse.parent.span_id in {
        s.context.span_id
        for s in spans
        if s.name in ("ragline.function.upload", "ragline.function.ingest")
    }
