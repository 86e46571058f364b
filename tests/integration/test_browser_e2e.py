"""A real browser on another origin uses the API: Debian's chromium driven by Playwright.

The page of ``tests/support/frontend/index.html`` is served on its own loopback port and
calls the stack's API, served on another: it lists knowledge bases with ``fetch`` and a
bearer token, uploads a file as multipart, follows the document's progress and streams
an answer with ``EventSource`` and stream tickets. The same page served from an origin
the stack does not allow is refused by the browser. Everything the page learns, it
writes to its DOM, which is what the tests read.

The browser is the system's chromium (``apt-get install chromium``; ``.ci/run``
installs it), never a download of Playwright's own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from scripts.localstack.gcs import upload_cors
from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of
from tests.support.pipeline import Recorder, restore_transports
from tests.support.stack import served

PAGE = Path(__file__).resolve().parents[1] / "support" / "frontend" / "index.html"
# Only the loopback interface: no background services, and no name resolves but
# 127.0.0.1 (the flags keep the browser itself from calling out).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Containers (Cloud Build's) often have a small /dev/shm; chromium then crashes.
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# Bounds on what the page waits for; the pipeline of one small file takes far less.
PAGE_TIMEOUT_MS = 120_000
TEXT = (
    "Refund policy. Customers may return an item within thirty days of delivery. "
    "Refunds are paid to the original card within five business days."
)
QUESTION = "How long do customers have to return an item?"


def _chromium_path() -> str | None:
    configured = os.environ.get("RAGLINE_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system chromium (skips if there is none, fails under CI, which installs it)."""
    path = _chromium_path()
    if path is None or not os.access(path, os.X_OK):
        # .ci/run installs Debian's chromium: missing there is an error.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "no chromium found (apt-get install chromium, or set RAGLINE_CHROMIUM)"
        )
    assert path is not None
    return path


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[BrowserContext]:
    """A headless chromium with a new, empty profile; closed after the test."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


def _page_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Static hosting of the frontend page (any path serves it)."""
    body = PAGE.read_bytes()
    start_response(
        "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
    )
    return [body]


class ApiServer:
    """The stack's one origin served over HTTP, noting each request's method, path, origin."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.url = ""
        self.requests: list[tuple[str, str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.requests.append(
            (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_ORIGIN", ""))
        )
        return self.app(environ, start_response)

    def from_origin(self, origin: str) -> list[tuple[str, str]]:
        """The method and path of every request that came from ``origin``."""
        return [(method, path) for method, path, sent in self.requests if sent == origin]


@pytest.fixture
def server(stack: LocalStack) -> Iterator[ApiServer]:
    """The stack's one origin, served on a free loopback port."""
    server = ApiServer(stack.app)
    with served(server) as url:
        server.url = url
        yield server


@pytest.fixture
def page_origin() -> Iterator[str]:
    """An origin serving the frontend page."""
    with served(_page_app) as url:
        yield url


@pytest.fixture
def page_origin_elsewhere() -> Iterator[str]:
    """Another origin serving the page, which nothing allows."""
    with served(_page_app) as url:
        yield url


def set_upload_cors(stack: LocalStack, origins: list[str]) -> None:
    """Configure the upload bucket's CORS for ``origins``, as Terraform does."""
    bucket = stack.objects.client.bucket(stack.settings.upload_bucket)
    bucket.cors = upload_cors(origins)
    bucket.patch()


@pytest.fixture
def allowed_origin(
    stack: LocalStack, page_origin: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The page's origin, added to the origins the running stack (API, bucket) allows."""
    settings = stack.runtime.settings
    origins = [*settings.cors_origins, page_origin]
    monkeypatch.setattr(
        stack.runtime, "settings", settings.model_copy(update={"cors_origins": origins})
    )
    set_upload_cors(stack, origins)
    yield page_origin
    set_upload_cors(stack, settings.cors_origins)


class Recorded:
    """The requests a page sent and the messages it logged."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.console: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("console", lambda message: self.console.append(message.text))

    def wait_for_console(self, page: Page, text: str) -> None:
        """Wait (bounded) until the page has logged a message containing ``text``."""
        # Events reach Python only inside Playwright calls, so none slips in between.
        if not any(text in line for line in self.console):
            page.wait_for_event("console", lambda message: text in message.text, timeout=30_000)


def start_page(context: BrowserContext, origin: str, **fragment: str) -> tuple[Page, Recorded]:
    """Open the page at ``origin`` with ``fragment``; it starts at once."""
    page = context.new_page()
    recorded = Recorded(page)
    page.goto(f"{origin}/#{urlencode(fragment)}")
    return page, recorded


def wait_finished(page: Page) -> None:
    """Wait until the page says it is done or failed."""
    page.wait_for_function(
        "document.getElementById('state').dataset.state !== 'running'", timeout=PAGE_TIMEOUT_MS
    )


def open_page(context: BrowserContext, origin: str, **fragment: str) -> tuple[Page, Recorded]:
    """Open the page at ``origin`` with ``fragment`` and wait until it finishes."""
    page, recorded = start_page(context, origin, **fragment)
    wait_finished(page)
    return page, recorded


def texts(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_text_contents()]


def assert_loopback_only(urls: list[str]) -> None:
    hosts = {urlsplit(url).hostname for url in urls if not url.startswith(("data:", "about:"))}
    assert hosts == {"127.0.0.1"}, hosts


def test_a_page_on_an_allowed_origin_lists_uploads_follows_and_streams_an_answer(
    browser: BrowserContext,
    clean_stack: LocalStack,
    server: ApiServer,
    allowed_origin: str,
    tmp_path: Path,
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("support")
    api.create_kb("engineering")

    page, recorded = open_page(
        browser,
        allowed_origin,
        api=server.url,
        token=api.token,
        kb="support",
        q=QUESTION,
        text=TEXT,
    )

    state = page.locator("#state").get_attribute("data-state")
    assert state == "done", (page.locator("#error").text_content(), recorded.console)
    assert page.locator("#workspace").text_content()
    assert sorted(texts(page, "#kbs li")) == ["engineering", "support"]

    document_id = page.locator("#upload").get_attribute("data-document")
    assert document_id
    document = api.document(document_id)
    assert document["status"] == "ready" and document["filename"] == "policy.txt"
    stages = texts(page, "#progress li")
    assert stages[-1] == "ready" and stages.count("ready") == 1, stages
    assert "received" in stages, stages
    event_ids = [
        int(value or 0)
        for value in page.locator("#progress li").evaluate_all(
            "items => items.map(item => item.dataset.id)"
        )
    ]
    assert event_ids == sorted(event_ids) and len(set(event_ids)) == len(event_ids)

    answer = page.locator("#answer")
    assert int(answer.get_attribute("data-tokens") or 0) >= 1
    assert "thirty days" in (answer.text_content() or "")
    cited = page.locator("#citations li")
    assert cited.count() >= 1
    assert cited.first.get_attribute("data-document") == document_id
    assert cited.first.get_attribute("data-filename") == "policy.txt"
    # The streamed turn is the stored one, with the same citations.
    turn_id = answer.get_attribute("data-turn")
    stored = api.get(f"/v1/turns/{turn_id}/citations")
    assert stored.status_code == 200, stored.get_data(as_text=True)
    assert [(str(c["n"]), c["document_id"]) for c in body_of(stored)["citations"]] == [
        (c.get_attribute("data-n"), c.get_attribute("data-document")) for c in cited.all()
    ]
    assert {c["kb_id"] for c in body_of(stored)["citations"]} == {kb["id"]}

    # What crossed origins: JSON calls after their preflight, streams as plain GETs with
    # their ticket (EventSource sends no preflight and no Authorization).
    seen = server.from_origin(allowed_origin)
    assert ("OPTIONS", "/v1/knowledge-bases") in seen and ("GET", "/v1/knowledge-bases") in seen
    events_path = f"/v1/documents/{document_id}/events"
    assert ("GET", events_path) in seen and ("OPTIONS", events_path) not in seen
    assert ("GET", "/v1/ask/stream") in seen and ("OPTIONS", "/v1/ask/stream") not in seen
    assert_loopback_only(recorded.urls)
    shot = tmp_path / "allowed.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0 and shot.read_bytes().startswith(b"\x89PNG")


# A PUT of the page's to a signed URL (what the page does with the API's grant).
PUT = """async ([url, headers]) => {
  try {
    const response = await fetch(url, { method: "PUT", headers, body: "refunds",
                                        signal: AbortSignal.timeout(30000) });
    return { status: response.status };
  } catch (error) {
    return { refused: `${error.name}: ${error.message}` };
  }
}"""


def test_a_page_puts_a_file_to_a_signed_upload_url_of_the_bucket(
    browser: BrowserContext,
    clean_stack: LocalStack,
    server: ApiServer,
    allowed_origin: str,
    page_origin_elsewhere: str,
) -> None:
    api = Api(clean_stack)
    api.create_kb("support")

    page, recorded = open_page(
        browser,
        allowed_origin,
        api=server.url,
        token=api.token,
        kb="support",
        q=QUESTION,
        text=TEXT,
        upload="signed",
    )

    state = page.locator("#state").get_attribute("data-state")
    assert state == "done", (page.locator("#error").text_content(), recorded.console)
    upload = page.locator("#upload")
    # The bytes went to the bucket (the emulator's origin), not through the API.
    assert upload.get_attribute("data-via") == os.environ["STORAGE_EMULATOR_HOST"]
    document = api.document(upload.get_attribute("data-document") or "")
    assert document["status"] == "ready" and document["filename"] == "policy.txt"
    assert texts(page, "#progress li")[-1] == "ready"
    assert "thirty days" in (page.locator("#answer").text_content() or "")
    assert_loopback_only(recorded.urls)

    # The bucket lets only its configured origins PUT.
    grant = body_of(
        api.post(
            "/v1/knowledge-bases/support/uploads",
            json={"filename": "other.txt", "content_type": "text/plain", "size": 7},
        )
    )
    elsewhere = browser.new_page()
    elsewhere.goto(f"{page_origin_elsewhere}/#")
    refused = elsewhere.evaluate(PUT, [grant["upload_url"], grant["headers"]])
    assert refused.get("refused", "").startswith("TypeError"), refused
    name = grant["object"].split("/", 3)[3]
    assert clean_stack.objects.stat(clean_stack.settings.upload_bucket, name) is None


def test_the_page_resumes_a_dropped_progress_stream_with_a_new_ticket(
    browser: BrowserContext,
    clean_stack: LocalStack,
    recorder: Recorder,
    server: ApiServer,
    allowed_origin: str,
) -> None:
    api = Api(clean_stack)
    api.create_kb("support")

    # The pipeline is held (its messages recorded), and each progress stream ends after
    # a second: EventSource would reconnect with its spent ticket and get a 401.
    page, recorded = start_page(
        browser,
        allowed_origin,
        api=server.url,
        token=api.token,
        kb="support",
        q=QUESTION,
        text=TEXT,
        progress_timeout="1",
    )
    page.wait_for_function(
        "Number(document.getElementById('progress').dataset.reconnects) >= 2",
        timeout=PAGE_TIMEOUT_MS,
    )
    assert texts(page, "#progress li") == ["received"]
    restore_transports(clean_stack)
    assert recorder.messages
    for topic, message in recorder.messages:
        clean_stack.bus.publish(topic, message)
    wait_finished(page)

    state = page.locator("#state").get_attribute("data-state")
    assert state == "done", (page.locator("#error").text_content(), recorded.console)
    # Resumed after the last event seen: every stage once, in order.
    assert texts(page, "#progress li") == [
        "received",
        "parsing",
        "chunking",
        "embedding",
        "indexing",
        "ready",
    ]
    assert "thirty days" in (page.locator("#answer").text_content() or "")
    assert_loopback_only(recorded.urls)


def test_the_same_page_on_an_origin_not_allowed_is_refused(
    browser: BrowserContext, stack: LocalStack, server: ApiServer, page_origin: str
) -> None:
    assert page_origin not in stack.runtime.settings.cors_origins
    token = Api(stack).token

    page, recorded = open_page(
        browser, page_origin, api=server.url, token=token, kb="support", q=QUESTION, text=TEXT
    )

    assert page.locator("#state").get_attribute("data-state") == "error"
    # The page gets a rejected fetch (no status, no body); the browser says why.
    error = page.locator("#error").text_content() or ""
    assert error.startswith("GET /v1/me refused: TypeError"), error
    recorded.wait_for_console(page, "CORS policy")
    assert texts(page, "#kbs li") == []
    # The browser asked first and, refused, never sent the request itself.
    assert server.from_origin(page_origin) == [("OPTIONS", "/v1/me")]
    assert_loopback_only(recorded.urls)


# What the page itself reads of a response it fetched.
FETCH = """async ([url, headers]) => {
  try {
    const response = await fetch(url, { headers, signal: AbortSignal.timeout(30000) });
    const body = await response.json();
    return { status: response.status, code: body.error && body.error.code,
             challenge: response.headers.get("WWW-Authenticate") };
  } catch (error) {
    return { refused: `${error.name}: ${error.message}` };
  }
}"""


def test_an_allowed_page_reads_the_apis_errors(
    browser: BrowserContext, stack: LocalStack, server: ApiServer, allowed_origin: str
) -> None:
    page, recorded = open_page(
        browser, allowed_origin, api=server.url, token="not-a-token", kb="support", q=QUESTION
    )

    # A refused credential is a response the page may read: its status and error code.
    assert page.locator("#state").get_attribute("data-state") == "error"
    error = page.locator("#error").text_content() or ""
    assert error.startswith("GET /v1/me: 401 token_"), (error, recorded.console)
    bad_token = {"Authorization": "Bearer not-a-token"}
    rejected = page.evaluate(FETCH, [f"{server.url}/v1/knowledge-bases", bad_token])
    assert rejected["status"] == 401, rejected
    # The challenge tells a client to get a new token (RFC 6750), so it is exposed.
    assert 'error="invalid_token"' in (rejected["challenge"] or ""), rejected
    # A path no route serves is a readable 404, even behind a preflight.
    owner = {"Authorization": f"Bearer {Api(stack).token}"}
    missing = page.evaluate(FETCH, [f"{server.url}/v1/no-such-thing", owner])
    assert missing == {"status": 404, "code": "not_found", "challenge": None}, missing
    assert_loopback_only(recorded.urls)
