"""The sample set in ``samples/``: what a fresh clone ingests and asks (README quickstart).

It runs the README's commands (``scripts/ragline ingest samples --kb samples``, then
``scripts/ragline ask``) against the stack served over HTTP, through the real pipeline,
and needs nothing outside the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.localstack.stack import LocalStack
from tests.support.api import owner_token
from tests.support.stack import served

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"

# file -> (a question answered by that file alone, words its answer must quote)
QUESTIONS: dict[str, tuple[str, str]] = {
    "apple-10q-2023-q2.pdf": (
        "What were Apple's iPhone net sales in the three months ended April 1, 2023?",
        "iPhone",
    ),
    "nvidia-10q-2023-q1.pdf": (
        "What was NVIDIA's Data Center revenue for the first quarter of fiscal year 2024?",
        "$4.28 billion",
    ),
    "intel-10q-2023-q1.pdf": (
        "How much did Intel's server volume decrease in Q1 2023?",
        "Server volume decreased 50%",
    ),
    "employee-handbook.docx": (
        "How many days of paid vacation does a full-time employee receive?",
        "27 days of paid vacation",
    ),
    "beacon-sensor.html": (
        "How much does one Beacon S2 sensor cost?",
        "149 US dollars",
    ),
    "database-failover-runbook.md": (
        "What is the recovery time objective of the database failover?",
        "20 minutes",
    ),
}


def ragline(*args: str, token: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``scripts/ragline`` wrapper from the repository root, as the README does."""
    return subprocess.run(
        [str(REPO_ROOT / "scripts" / "ragline"), *args],
        cwd=REPO_ROOT,
        env={**os.environ, "RAGLINE_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def url(clean_stack: LocalStack) -> Iterator[str]:
    """The stack's one origin served on a real port while the test runs."""
    with served(clean_stack.app) as base_url:
        yield base_url


def test_every_sample_file_is_in_the_repository() -> None:
    assert sorted(path.name for path in SAMPLES.iterdir()) == sorted(QUESTIONS)
    # Small enough to ship with every clone.
    assert sum(path.stat().st_size for path in SAMPLES.iterdir()) < 1_300_000


def test_the_sample_set_ingests_and_each_file_answers_its_question(
    clean_stack: LocalStack, url: str
) -> None:
    token = owner_token(clean_stack)
    ingested = ragline("ingest", "samples", "--kb", "samples", "--url", url, token=token)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    assert f"{len(QUESTIONS)} of {len(QUESTIONS)} ready, 0 failed" in ingested.stdout

    for filename, (question, quoted) in QUESTIONS.items():
        asked = ragline("ask", question, "--kb", "samples", "--url", url, "--json", token=token)
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)
        cited = [citation["filename"] for citation in answer["citations"]]
        assert filename in cited, (question, cited)
        assert quoted in answer["answer"], (question, answer["answer"])
