"""Each pipeline step attempt logs one "step finished" line whose outcome tells an
attempt that did the work ("ok") from one that had nothing to do ("skipped")."""

from __future__ import annotations

import logging

import pytest

from scripts.localstack.stack import LocalStack
from shared.pipeline.runner import run_step
from shared.pipeline.steps import parse_version
from tests.support.api import Api

TEXT = "# Redelivery\n\nA parse message delivered twice parses once.\n"


def _outcomes(caplog: pytest.LogCaptureFixture, version_id: str) -> list[str]:
    return [
        str(getattr(record, "outcome", ""))
        for record in caplog.records
        if record.getMessage() == "step finished"
        and getattr(record, "version_id", None) == version_id
    ]


def test_a_redelivered_parse_is_logged_as_skipped(
    clean_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("redelivery")
    document = api.ingest(kb["id"], "redelivery.md", TEXT.encode())
    version_id = api.document(document["id"])["versions"][0]["id"]
    runtime = clean_stack.runtime
    assert set(_outcomes(caplog, version_id)) <= {"ok", "skipped"}  # the ingest's own steps
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="shared.pipeline.runner"):
        run_step(runtime, "parse", version_id, lambda: parse_version(runtime, version_id))

    assert _outcomes(caplog, version_id) == ["skipped"]
