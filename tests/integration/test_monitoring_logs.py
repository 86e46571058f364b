"""The log-based metrics of infra/terraform/monitoring.tf match the lines the code writes.

A pipeline run, a failing document, a dead-lettered message and an answer go through the
real code on the local stack; their log records are rendered by the JSON formatter the
functions use (shared/log.py), as Cloud Logging receives them. Each metric's filter and
extractors may only name ``jsonPayload`` fields those lines carry, and the message it
selects must be one the code writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.pipeline.steps import dead_letter
from tests.support.api import Api
from tests.support.logs import captured_entries
from tests.support.terraform import PROJECT, STACK, Evaluator

NOTE = "# Field notes\n\n" + "Every detail is written down carefully and checked twice. " * 40
BINARY = b"\x00\x01\x02binary"
# Fields of Cloud Run's own entries (not written by our code) a filter may name.
PLATFORM_FIELDS = {
    "resource.type",
    "resource.labels.service_name",
    "httpRequest.status",
    "log_id",
}
FIELD = re.compile(r"\b(jsonPayload(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
MESSAGE = re.compile(r'jsonPayload\.message="([^"]*)"')


@pytest.fixture
def entries(clean_stack: LocalStack) -> Iterator[list[dict[str, Any]]]:
    """The JSON entries of a pipeline run, a failure, a dead letter and an answer."""
    with captured_entries() as written:
        _exercise(clean_stack)
    yield written


def _exercise(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("monitored")
    api.ingest(kb["id"], "notes.md", NOTE.encode())
    broken = api.ingest(kb["id"], "blob.bin", BINARY)
    assert broken["status"] == "failed"
    version_id = clean_stack.database.scalar(
        "SELECT id::text FROM document_versions WHERE document_id = CAST(:d AS uuid)",
        d=broken["id"],
    )
    dead_letter(clean_stack.runtime, version_id, attempts=5)
    asked = api.post(
        "/v1/ask", json={"knowledge_base_ids": [kb["id"]], "question": "How are details checked?"}
    )
    assert asked.status_code == 200, asked.get_data(as_text=True)


def _metrics() -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = Evaluator(STACK, PROJECT).local("log_metrics")
    return metrics


def test_every_log_metric_reads_fields_the_code_logs(entries: list[dict[str, Any]]) -> None:
    metrics = _metrics()
    assert set(metrics) == {
        "versions_failed",
        "dead_lettered",
        "step_latency",
        "answer_latency",
        "http_5xx",
    }
    for name, metric in metrics.items():
        text = " ".join([metric["filter"], metric["value"] or "", *metric["labels"].values()])
        fields = {path.removeprefix("jsonPayload.") for path in FIELD.findall(text)}
        if not fields:
            # Platform entries only: the filter names nothing our code would have to log.
            names = set(re.findall(r"\b(resource\.[a-z_.]+|httpRequest\.[a-zA-Z]+|log_id)", text))
            assert names <= PLATFORM_FIELDS, f"{name}: {names - PLATFORM_FIELDS}"
            continue
        (message,) = MESSAGE.findall(metric["filter"])
        selected = [entry for entry in entries if entry.get("message") == message]
        assert selected, f"{name}: no code path logged {message!r}"
        carrying = [entry for entry in selected if fields <= set(entry)]
        assert carrying, f"{name}: {message!r} lines lack {fields - set(selected[0])}"
        if metric["value_type"] == "DISTRIBUTION":
            assert all(isinstance(entry["duration_ms"], int) for entry in carrying), name


def test_the_lines_say_what_happened(entries: list[dict[str, Any]]) -> None:
    failed = [e for e in entries if e["message"] == "version failed"]
    assert "binary_content" in {e["error_code"] for e in failed}
    steps = {(e["step"], e["outcome"]) for e in entries if e["message"] == "step finished"}
    assert {("parse", "ok"), ("chunk", "ok"), ("embed", "ok"), ("index", "ok")} <= steps
    assert ("parse", "failed") in steps
    (dead,) = [e for e in entries if e["message"] == "message dead-lettered"]
    assert dead["attempts"] == 5
    answers = [e for e in entries if e["message"] == "answer finished"]
    assert [e["outcome"] for e in answers] == ["answered"]
    assert answers[0]["duration_ms"] >= 0
