"""Shared fixtures: one real local stack per test session, cleaned between tests.

The stack is the one ``scripts/ragline dev`` runs: embedded PostgreSQL + pgvector, the
GCS emulator behind the real storage client, the in-process bus and task queue, and
every function hosted by functions-framework. Nothing of Ragline's own is mocked.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.localstack.bus import DeliveryOptions
from scripts.localstack.dispatcher import Backoff
from scripts.localstack.stack import LocalStack, StackConfig
from tests.support.openai_server import LLM_API_KEY, LLM_MODEL, OpenAIServer
from tests.support.pipeline import Recorder, restore_transports
from tests.support.stack import wipe_stack
from tests.support.web_site import Site, serve_site

# The frontend origin the test stack allows (CORS).
FRONTEND = "http://127.0.0.1:5173"

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = Path(os.environ.get("RAGLINE_CORPUS", SHARED / "corpus" / "sec-10q"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack, started once for the test session."""
    data = tmp_path_factory.mktemp("stack")
    config = StackConfig(
        data_dir=data,
        port=0,
        delivery=DeliveryOptions(max_attempts=4),
        backoff=Backoff(base_s=0.02, max_s=0.2),
        notify_interval_s=0.2,
        sweep_interval_s=None,  # tests sweep explicitly
        env={"RAGLINE_PROJECT": "ragline-test", "RAGLINE_CORS_ORIGINS": json.dumps([FRONTEND])},
    )
    local = LocalStack(config).start()
    yield local
    local.stop()
    # The embedded server stops at interpreter exit and logs as it does, after pytest
    # has closed the streams it captured; those late log lines are not errors.
    logging.raiseExceptions = False


@pytest.fixture
def clean_stack(stack: LocalStack) -> Iterator[LocalStack]:
    """The stack with an empty database and buckets, and default delivery options."""
    stack.wait_idle(120)
    wipe_stack(stack)
    yield stack
    stack.config.delivery.duplicate = False
    stack.config.delivery.max_jitter_s = 0.0
    stack.wait_idle(120)


@pytest.fixture
def recorder(clean_stack: LocalStack) -> Iterator[Recorder]:
    """Messages and tasks sent during the test are recorded, not delivered."""
    yield Recorder().install()
    restore_transports(clean_stack)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The SEC 10-Q corpus beside the checkout (skips if it is not there, fails under CI)."""
    if not CORPUS.is_dir():
        # CI always has the corpus beside the clone: missing there is an error.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[OpenAIServer]:
    """A local OpenAI-compatible server that ``OPENAI_*`` point at while the test runs.

    Settings read from now on see it (``Settings()``); so does the stack's runtime, whose
    settings were read when it started, when the test uses the stack.
    """
    from shared.answering.generators import clear_generator_cache

    with OpenAIServer(api_key=LLM_API_KEY) as server:
        monkeypatch.setenv("OPENAI_API_KEY", LLM_API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_MODEL", LLM_MODEL)
        if "stack" in request.fixturenames:
            runtime = request.getfixturevalue("stack").runtime
            configured = runtime.settings.model_copy(
                update={
                    "openai_api_key": LLM_API_KEY,
                    "openai_base_url": server.base_url,
                    "openai_model": LLM_MODEL,
                }
            )
            monkeypatch.setattr(runtime, "settings", configured)
        clear_generator_cache()
        yield server
        clear_generator_cache()


@pytest.fixture
def site() -> Iterator[Site]:
    """A small web site on the loopback interface (tests/support/web_site.py)."""
    with serve_site() as served:
        yield served
