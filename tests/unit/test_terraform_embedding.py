"""The embed queue, the embed function and each instance's pacing follow the provider's limits.

Evaluated from infra/terraform by tests/support/terraform.py for several sets of the
``embedding_*`` variables; the rendered environment loads into the Settings the
embedder's pacer is made from.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from shared.embeddings.openai import EmbeddingLimits
from tests.support.terraform import (
    PROJECT,
    STACK,
    Evaluator,
    load_settings,
    rendered_environments,
)

LIMITS = [
    # rpm, tpm, request tokens, request seconds, max instances
    {},  # the variables' defaults: OpenAI's tier 1
    {"embedding_rpm": 500, "embedding_tpm": 150_000, "embedding_request_tokens": 300_000},
    {"embedding_rpm": 10_000, "embedding_tpm": 10_000_000, "embedding_request_seconds": 20},
    {"embedding_rpm": 60_000, "embedding_tpm": 50_000_000, "embed_max_instances": 25},
    {"embedding_tpm": 1_000_000, "embedding_request_tokens": 8_000, "embedding_request_seconds": 2},
]


def derived(inputs: dict[str, Any]) -> dict[str, Any]:
    evaluator = Evaluator(STACK, {**PROJECT, **inputs})
    evaluator.validate_variables()
    queue = STACK.resource("google_cloud_tasks_queue", "embed").block("rate_limits").attributes
    return {
        "dispatches": evaluator.evaluate(queue["max_dispatches_per_second"]),
        "concurrent": evaluator.evaluate(queue["max_concurrent_dispatches"]),
        "instances": evaluator.local("functions")["embed"]["max_instances"],
        "env": rendered_environments({**PROJECT, **inputs}),
    }


@pytest.mark.parametrize("given", LIMITS, ids=lambda given: ",".join(map(str, given.values())))
def test_the_queue_and_the_instances_follow_the_limits(
    given: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rpm = given.get("embedding_rpm", 3000)
    tpm = given.get("embedding_tpm", 1_000_000)
    request_tokens = min(given.get("embedding_request_tokens", 300_000), tpm)
    seconds = given.get("embedding_request_seconds", 10)
    cap = given.get("embed_max_instances", 10)
    instances = max(1, min(cap, math.ceil(tpm * seconds / (60 * request_tokens))))

    found = derived(given)
    assert found["dispatches"] == pytest.approx(min(rpm / 60, 500))
    assert found["concurrent"] == found["instances"] == instances
    settings, _ = load_settings(monkeypatch, found["env"]["embed"])
    share = EmbeddingLimits(
        rpm=settings.embedding_rpm,
        tpm=settings.embedding_tpm,
        request_tokens=settings.embedding_request_tokens,
    )
    # Together the instances stay inside the project's limits, and no request is ever
    # larger than one instance's minute.
    assert share.rpm * instances <= rpm and share.tpm * instances <= tpm
    assert share.rpm == max(1, rpm // instances) and share.tpm == tpm // instances
    assert share.tokens_per_request == min(request_tokens, tpm // instances)
    # The requests a minute the queue dispatches cover what the tokens allow.
    assert found["dispatches"] * 60 >= min(rpm, tpm / share.tokens_per_request)


def test_every_function_reads_the_same_share() -> None:
    environments = rendered_environments({**PROJECT, "embedding_tpm": 2_000_000})
    shares = {env["RAGLINE_EMBEDDING_TPM"] for env in environments.values()}
    assert shares == {"1000000"}  # two instances of 10 s-long 300k requests: 2M / 2


def test_limits_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="embedding_request_tokens"):
        derived({"embedding_request_tokens": 300_001})
