"""Timeouts agree: Terraform's values (evaluated) against the deployed Settings.

A stream the platform cuts off, a push redelivered while its first delivery still runs, or
a sweep that re-drives a step still in progress are all silent failures in production;
these tests catch the value that causes them before a deploy does.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.answering.rewrite import REWRITE_MAX_RETRIES, REWRITE_TIMEOUT_S
from shared.config import Settings
from tests.support.terraform import (
    CASES,
    STACK,
    Evaluator,
    load_settings,
    rendered_environments,
)

# Room for the work around a stream or step (database reads, the last flush).
MARGIN_S = 10
# The openai client's exponential backoff between retries, all retries together.
OPENAI_BACKOFF_S = 3 * 8
PUSH_ACK_DEADLINE_MAX_S = 600
EVENTARC_RETRY_WINDOW_S = 24 * 3600


@pytest.fixture(params=sorted(CASES))
def deployed(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[Evaluator, dict[str, Any], dict[str, Settings]]:
    """The evaluator, local.functions and each function's Settings for one case."""
    inputs = CASES[request.param]
    evaluator = Evaluator(STACK, inputs)
    settings = {
        key: load_settings(monkeypatch, env)[0]
        for key, env in rendered_environments(inputs).items()
    }
    return evaluator, evaluator.local("functions"), settings


Deployed = tuple[Evaluator, dict[str, Any], dict[str, Settings]]


def _seconds(duration: str) -> int:
    assert duration.endswith("s"), duration
    return int(duration[:-1])


def test_document_event_streams_end_before_the_manage_function_times_out(
    deployed: Deployed,
) -> None:
    _, functions, settings = deployed
    assert settings["manage"].events_stream_s + MARGIN_S <= functions["manage"]["timeout"]


def test_answer_streams_end_before_the_answer_function_times_out(deployed: Deployed) -> None:
    _, functions, settings = deployed
    answer = settings["answer"]
    # Before the turn starts: the follow-up rewrite, with its own timeout and retry.
    rewrite = (REWRITE_MAX_RETRIES + 1) * REWRITE_TIMEOUT_S
    # The first token may wait for every attempt of the model call; after it, the
    # deadline is checked at each token, and one read may be in progress then.
    first_token = (answer.openai_max_retries + 1) * answer.openai_timeout_s + OPENAI_BACKOFF_S
    streaming = answer.answer_deadline_s + answer.openai_timeout_s
    longest = rewrite + max(first_token, streaming) + MARGIN_S
    assert longest <= functions["answer"]["timeout"], longest


def test_each_push_subscription_waits_for_its_function(deployed: Deployed) -> None:
    evaluator, functions, _ = deployed
    step = STACK.resource("google_pubsub_subscription", "step")
    fed = evaluator.local("push_steps")
    assert set(fed) == {"parse", "chunk", "index", "webhooks"}
    for key, spec in fed.items():
        scope = {"each": {"key": key, "value": spec}}
        ack = evaluator.evaluate(step.attributes["ack_deadline_seconds"], scope)
        # The ack deadline is the push request's timeout: shorter than the function's,
        # a healthy slow run is redelivered mid-flight.
        assert functions[key]["timeout"] <= ack <= PUSH_ACK_DEADLINE_MAX_S, key
    dead_letter = STACK.resource("google_pubsub_subscription", "dead_letter")
    ack = evaluator.evaluate(dead_letter.attributes["ack_deadline_seconds"])
    assert functions["dead_letter"]["timeout"] <= ack <= PUSH_ACK_DEADLINE_MAX_S


def test_cloud_tasks_wait_for_the_embed_function(deployed: Deployed) -> None:
    _, functions, settings = deployed
    for key in ("chunk", "sweep"):  # the functions that enqueue embed tasks
        deadline = settings[key].embed_dispatch_deadline_s
        assert functions["embed"]["timeout"] < deadline <= 1800, key


def test_stage_leases_stall_and_sweep_windows_nest(deployed: Deployed) -> None:
    evaluator, functions, settings = deployed
    sweep = settings["sweep"]
    # Settings checks lease_s < stall_after_s within one process; the lease is held by
    # the step functions and the stall window read by the sweep function, so the pair
    # that matters crosses functions.
    for key in ("parse", "chunk"):  # the stages that hold a lease while they work
        lease = settings[key].lease_s
        # An attempt holds its version at least as long as it may run ...
        assert functions[key]["timeout"] <= lease, key
        # ... and its lease has expired when the sweeper re-drives, so the re-drive runs.
        assert lease < sweep.stall_after_s, key
    # No step that is still running counts as stalled.
    pipeline = ("ingest", "parse", "chunk", "embed", "index", "dead_letter")
    assert max(functions[key]["timeout"] for key in pipeline) + MARGIN_S <= sweep.stall_after_s
    # A sweep ends before the scheduler gives up on it and retries.
    job = STACK.resource("google_cloud_scheduler_job", "sweep")
    attempt = _seconds(evaluator.evaluate(job.attributes["attempt_deadline"]))
    assert functions["sweep"]["timeout"] < attempt
    # Every step reads the same stall window the sweep uses (one setting, one value).
    assert sweep.stall_after_s == evaluator.variables["stall_after_seconds"]


def test_max_event_age_outlasts_the_retries_and_bounds_eventarc(deployed: Deployed) -> None:
    evaluator, functions, settings = deployed
    variables = evaluator.variables
    age = settings["parse"].max_event_age_s
    assert {s.max_event_age_s for s in settings.values()} == {age}
    # Pub/Sub retries a message up to max_delivery_attempts times, each attempt up to the
    # slowest step's timeout plus the longest backoff: the age limit must not cut that
    # short (it would fail versions the retries would still have saved) ...
    slowest = max(functions[key]["timeout"] for key in evaluator.local("push_steps"))
    retries = variables["max_delivery_attempts"] * (
        slowest + variables["retry_max_backoff_seconds"]
    )
    assert retries < age
    # ... and it must end Eventarc's 24 h of storage-event retries early, or it bounds nothing.
    assert age < EVENTARC_RETRY_WINDOW_S
    assert variables["retry_min_backoff_seconds"] <= variables["retry_max_backoff_seconds"]
