"""Trace headers read as the platform writes them; request URLs logged without secrets."""

from __future__ import annotations

import logging
import threading

import flask
import pytest
from werkzeug.datastructures import Headers

from shared import trace_context, trace_export
from shared.config import read_settings
from shared.invocation import remote_ip, request_url
from shared.trace_context import (
    Invocation,
    SpanRef,
    activated,
    bind,
    from_headers,
    parse_cloud_trace_context,
    parse_traceparent,
    propagation,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_traceparent_is_read_and_written_back() -> None:
    found = parse_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01")
    assert found == SpanRef(TRACE, "00f067aa0ba902b7", sampled=True)
    assert found.traceparent() == f"00-{TRACE}-00f067aa0ba902b7-01"
    assert parse_traceparent(f"00-{TRACE}-00f067aa0ba902b7-00") == SpanRef(
        TRACE, "00f067aa0ba902b7", sampled=False
    )
    # Uppercase is tolerated; a later version's extra fields are ignored.
    assert parse_traceparent(f"01-{TRACE.upper()}-00F067AA0BA902B7-03-extra") is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",  # short trace id
    ],
)
def test_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_cloud_trace_context_span_is_decimal() -> None:
    found = parse_cloud_trace_context(f"{TRACE.upper()}/255;o=1")
    assert found == SpanRef(TRACE, "00000000000000ff", sampled=True)
    unsampled = parse_cloud_trace_context(f"{TRACE}/1")
    assert unsampled is not None and not unsampled.sampled
    # No span: the trace is still continued, from a span id of its own.
    bare = parse_cloud_trace_context(TRACE)
    assert bare is not None and bare.trace_id == TRACE and len(bare.span_id) == 16
    assert parse_cloud_trace_context(f"{TRACE}/{2**64};o=1") is None
    assert parse_cloud_trace_context("nope/1;o=1") is None


def test_traceparent_wins_over_the_cloud_header() -> None:
    other = "105445aa7843bc8bf206b12000100000"
    headers = Headers(
        {"Traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "X-Cloud-Trace-Context": f"{other}/1"}
    )
    found = from_headers(headers)
    assert found is not None and found.trace_id == TRACE
    only_cloud = from_headers(Headers({"x-cloud-trace-context": f"{other}/1;o=1"}))
    assert only_cloud is not None and only_cloud.trace_id == other
    assert from_headers(Headers()) is None


def test_ids_and_propagation_belong_to_the_current_invocation_only() -> None:
    assert propagation() == {}
    bind(version_id="ignored outside an invocation")
    invocation = Invocation("parse", "p", SpanRef(TRACE, "00f067aa0ba902b7", True))
    seen_elsewhere: list[dict[str, str]] = []
    with activated(invocation):
        bind(version_id="v1", kb_id=None, workspace="")
        assert invocation.ids == {"version_id": "v1"}
        assert propagation() == {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
        # A thread of its own starts outside the invocation.
        thread = threading.Thread(target=lambda: seen_elsewhere.append(propagation()))
        thread.start()
        thread.join()
    assert seen_elsewhere == [{}]
    assert trace_context.current() is None and propagation() == {}
    assert invocation.trace_resource == f"projects/p/traces/{TRACE}"


def test_request_url_drops_tickets_and_credentials() -> None:
    app = flask.Flask(__name__)
    query = "ticket=t1&after=3&api_key=k&access_token=a&q=heat+pump&Signature=s&password=p"
    with app.test_request_context(
        f"/v1/documents/d/events?{query}",
        headers={"X-Forwarded-For": "198.51.100.7, 10.0.0.1"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    ):
        assert request_url(flask.request) == "/v1/documents/d/events?after=3&q=heat+pump"
        assert remote_ip(flask.request) == "198.51.100.7"
    with app.test_request_context("/v1/ask", environ_base={"REMOTE_ADDR": "10.0.0.2"}):
        assert request_url(flask.request) == "/v1/ask"
        assert remote_ip(flask.request) == "10.0.0.2"


def test_export_without_its_package_warns_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    try:
        import opentelemetry.exporter.otlp  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the OTLP exporter is installed here")
    monkeypatch.setattr(trace_export, "_configured", False)
    monkeypatch.setattr(trace_export, "_provider", None)
    settings = read_settings().model_copy(update={"trace_export": "otlp"})
    with caplog.at_level(logging.WARNING, logger="shared.trace_export"):
        assert trace_export.configure(settings) is False
        # Once per instance: the second call neither retries nor warns again.
        assert trace_export.configure(settings) is False
    assert [r.getMessage() for r in caplog.records if "not installed" in r.getMessage()]
    assert len(caplog.records) == 1
    trace_export.flush()  # nothing installed: a no-op
