"""Sources: a bucket prefix (the GCS emulator, the real client) and a crawl (an in-test
connector) synced through the sync function and the local task queue into the same
pipeline as uploads; re-syncs parse nothing unchanged, a changed item becomes a new
version, a removed one deletes its document; redelivered and lost tasks; access."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from scripts.localstack.stack import LocalStack
from shared.errors import TransientError
from shared.models import Message, SyncTask
from shared.net.client import SafeHttpClient
from shared.net.guard import UrlGuard
from shared.pipeline import sync
from shared.runtime import Runtime
from shared.sources.connector import (
    Connector,
    FetchedDocument,
    ItemRef,
    Outcome,
    Revision,
    Visit,
)
from shared.sources.registry import SourceConfig, SourceType, register, unregister
from tests.support.api import Api
from tests.support.principals import workspace_owner
from tests.support.sources import SOURCE_BUCKET
from tests.support.sources import source_bucket as allowed_bucket

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
BUCKET = SOURCE_BUCKET
FILES = ("database-failover-runbook.md", "beacon-sensor.html", "employee-handbook.docx")


@pytest.fixture
def source_bucket(clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """An empty bucket gcs sources may read (the deployment's allow-list names it)."""
    allowed_bucket(clean_stack, monkeypatch)
    return clean_stack


def _put(stack: LocalStack, name: str, data: bytes) -> None:
    stack.objects.upload_bytes(BUCKET, name, data)


def _parse_messages(stack: LocalStack) -> int:
    """How many versions were sent to parse (a version may be sent more than once)."""
    topic = stack.settings.topic_parse
    return len(
        {
            message["attributes"]["version_id"]
            for published, message in stack.bus.published
            if published == topic
        }
    )


def _source(api: Api, source_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/sources/{source_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.json or {})


def _documents(api: Api, kb_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/knowledge-bases/{kb_id}/documents")
    assert response.status_code == 200, response.get_data(as_text=True)
    return list((response.json or {})["documents"])


def _sync(stack: LocalStack, api: Api, source_id: str) -> dict[str, Any]:
    response = api.post(f"/v1/sources/{source_id}/sync")
    assert response.status_code == 202, response.get_data(as_text=True)
    assert (response.json or {})["started"] is True
    stack.wait_idle(180)
    return _source(api, source_id)


def _counts(**nonzero: int) -> dict[str, int]:
    counts = dict.fromkeys(("added", "updated", "unchanged", "deleted", "skipped", "failed"), 0)
    counts.update(nonzero)
    return counts


def test_a_gcs_prefix_syncs_into_documents_and_follows_its_changes(
    source_bucket: LocalStack,
) -> None:
    stack = source_bucket
    api = Api(stack)
    kb = api.create_kb("bucket-docs")
    for name in FILES:
        _put(stack, f"team/docs/{name}", (SAMPLES / name).read_bytes())
    _put(stack, "other/outside.md", b"# Outside\n\nNot under the prefix.\n")

    created = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={"type": "gcs", "config": {"uri": f"gs://{BUCKET}/team/docs/"}},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    source = dict(created.json or {})
    assert source["status"] == "running" and source["current_run"]["trigger"] == "created"
    stack.wait_idle(180)

    source = _source(api, source["id"])
    assert source["status"] == "idle" and source["last_run"]["status"] == "succeeded"
    # The prefix itself is a listing (skipped), each object a document.
    assert source["counts"] == _counts(added=3, skipped=1)
    assert source["last_sync_started_at"] and source["last_sync_ended_at"]
    documents = _documents(api, kb["id"])
    assert sorted(d["filename"] for d in documents) == sorted(FILES)
    assert {d["status"] for d in documents} == {"ready"}
    runbook = next(d for d in documents if d["filename"] == FILES[0])
    assert runbook["origin"]["source_id"] == source["id"]
    assert runbook["origin"]["url"] == f"gs://{BUCKET}/team/docs/{FILES[0]}"
    assert runbook["origin"]["revision"]["version"]
    # The citation viewer shows where a passage's document came from.
    retrieved = api.post(
        "/v1/retrieve",
        json={"knowledge_base_ids": [kb["id"]], "question": "database failover runbook"},
    )
    assert retrieved.status_code == 200, retrieved.get_data(as_text=True)
    chunk_id = (retrieved.json or {})["passages"][0]["chunk_id"]
    viewer = api.get(f"/v1/citations/{chunk_id}/viewer").json or {}
    assert viewer["origin"]["source_id"] == source["id"]
    assert viewer["origin"]["url"].startswith(f"gs://{BUCKET}/team/docs/")

    # Nothing changed: nothing is downloaded, parsed or versioned.
    parsed_before = _parse_messages(stack)
    source = _sync(stack, api, source["id"])
    assert source["counts"] == _counts(unchanged=3, skipped=1)
    assert _parse_messages(stack) == parsed_before
    assert all(len(api.document(d["id"])["versions"]) == 1 for d in documents)

    # One object changes: a new version of its document; one disappears: its document goes.
    _put(stack, f"team/docs/{FILES[0]}", b"# Failover\n\nPromote the replica, then page.\n")
    stack.objects.delete(BUCKET, f"team/docs/{FILES[1]}")
    source = _sync(stack, api, source["id"])
    assert source["counts"] == _counts(updated=1, unchanged=1, deleted=1, skipped=1)
    assert _parse_messages(stack) == parsed_before + 1
    changed = api.document(runbook["id"])
    assert [v["number"] for v in changed["versions"]] == [2, 1]
    assert changed["status"] == "ready"
    assert changed["origin"]["revision"] != runbook["origin"]["revision"]
    gone = next(d for d in documents if d["filename"] == FILES[1])
    assert api.get(f"/v1/documents/{gone['id']}").status_code == 404

    # Deleting the source deletes its documents.
    assert api.delete(f"/v1/sources/{source['id']}").status_code == 204
    stack.wait_idle()
    assert _documents(api, kb["id"]) == []
    assert api.get(f"/v1/sources/{source['id']}").status_code == 404
    assert api.delete(f"/v1/sources/{source['id']}").status_code == 404


def test_a_sync_asked_for_while_one_runs_joins_it(source_bucket: LocalStack) -> None:
    stack = source_bucket
    api = Api(stack)
    kb = api.create_kb("joined")
    _put(stack, "joined/a.md", b"# A\n\nalpha\n")
    queue = RecordingQueue()
    stack.runtime.sync_tasks = queue
    try:
        created = api.post(
            f"/v1/knowledge-bases/{kb['id']}/sources",
            json={"type": "gcs", "config": {"uri": f"gs://{BUCKET}/joined/"}},
        )
        source = dict(created.json or {})
        again = api.post(f"/v1/sources/{source['id']}/sync")
        assert again.status_code == 202
        body = again.json or {}
        assert body["started"] is False and body["run"]["id"] == source["current_run"]["id"]
        assert list(queue.tasks) == [sync.task_name(source["current_run"]["id"], None)]
    finally:
        stack.runtime.sync_tasks = stack.sync_tasks


def test_creation_refuses_bad_types_configs_buckets_and_unsafe_urls(
    source_bucket: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = source_bucket
    api = Api(stack)
    kb = api.create_kb("refusals")
    path = f"/v1/knowledge-bases/{kb['id']}/sources"
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["10.1.2.3"]  # a private address: refused before any connection

    monkeypatch.setattr(stack.runtime, "outbound", SafeHttpClient(UrlGuard(resolver=resolver)))
    with Loopback() as hits:
        cases = [
            ({"type": "ftp", "config": {}}, "unknown_source_type"),
            ({"type": "gcs", "config": {"uri": "s3://x/y"}}, "invalid_source_config"),
            ({"type": "gcs", "config": {"uri": "gs://not-granted/x"}}, "bucket_not_allowed"),
            (
                {"type": "gcs", "config": {"uri": f"gs://{stack.settings.upload_bucket}/"}},
                "bucket_not_allowed",
            ),
            (
                {"type": "gcs", "config": {"uri": f"gs://{BUCKET}/", "x": 1}},
                "invalid_source_config",
            ),
            (
                {"type": "gcs", "config": {"uri": f"gs://{BUCKET}/"}, "schedule": {"every": "5m"}},
                "invalid_request",
            ),
            ({"type": "url", "config": {"url": hits.url}}, "unsafe_url"),
            ({"type": "url", "config": {"url": "http://169.254.169.254/latest/"}}, "unsafe_url"),
            ({"type": "url", "config": {"url": "https://intranet.example/"}}, "unsafe_url"),
            ({"type": "url", "config": {"url": "https://a.example/", "include": ["("]}}, None),
        ]
        for body, code in cases:
            response = api.post(path, json=body)
            assert response.status_code == 400, (body, response.get_data(as_text=True))
            if code is not None:
                assert (response.json or {})["error"]["code"] == code, body
        assert hits.requests == []  # the loopback server was never contacted
    assert resolved == ["intranet.example"]
    assert (api.get(path).json or {})["sources"] == []


def test_other_workspaces_and_lower_roles_cannot_reach_a_source(source_bucket: LocalStack) -> None:
    stack = source_bucket
    api = Api(stack)
    kb = api.create_kb("private-source")
    paused = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={"type": "gcs", "config": {"uri": f"gs://{BUCKET}/p/"}, "paused": True},
    )
    assert paused.status_code == 201
    source = dict(paused.json or {})
    assert source["status"] == "paused" and source["current_run"] is None

    stranger = workspace_owner(stack, "stranger", "elsewhere").api
    assert stranger.get(f"/v1/sources/{source['id']}").status_code == 404
    assert stranger.post(f"/v1/sources/{source['id']}/sync").status_code == 404
    assert stranger.patch(f"/v1/sources/{source['id']}", json={"paused": False}).status_code == 404
    assert stranger.delete(f"/v1/sources/{source['id']}").status_code == 404
    assert stranger.get(f"/v1/knowledge-bases/{kb['id']}/sources").status_code == 404
    assert _source(api, source["id"])["paused"] is True


# A crawl's orchestration, with an in-test connector standing in for the web crawler.


@dataclass
class Page:
    body: str
    links: list[str] = field(default_factory=list)
    etag: str = "1"


@dataclass
class Site:
    """Pages by URL; what the fake crawler visits (and how often)."""

    pages: dict[str, Page] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


SITE = Site()
BROKEN = "a page whose server always answers 503"


class FakeCrawlConfig(SourceConfig):
    url: str
    max_depth: int = Field(1, ge=0)


class FakeCrawler:
    """Follows links to ``max_depth``; conditional on the stored ETag, as a crawler is."""

    def __init__(self, config: FakeCrawlConfig) -> None:
        self.config = config

    def roots(self) -> Sequence[ItemRef]:
        return [ItemRef(self.config.url)]

    def visit(self, item: ItemRef, previous: Revision | None) -> Visit:
        page = SITE.pages.get(item.key)
        if page is None:
            return Visit(Outcome.GONE)
        if page.body == BROKEN:
            raise TransientError(f"{item.key} answered 503")
        children = (
            [ItemRef(link, item.depth + 1) for link in page.links]
            if item.depth < self.config.max_depth
            else []
        )
        if previous is not None and previous.etag == page.etag:
            return Visit(Outcome.UNCHANGED, children=children)
        with SITE.lock:
            SITE.fetched.append(item.key)
        return Visit(
            Outcome.FETCHED,
            FetchedDocument(
                content=page.body.encode(),
                filename=item.key.rsplit("/", 1)[-1] + ".md",
                content_type="text/markdown",
                origin_url=item.key,
                revision=Revision(etag=page.etag),
            ),
            children=children,
        )


def _fake_connector(runtime: Runtime, config: FakeCrawlConfig) -> Connector:
    return FakeCrawler(config)


@pytest.fixture
def fake_crawl(clean_stack: LocalStack) -> Iterator[LocalStack]:
    SITE.pages.clear()
    SITE.fetched.clear()
    register(SourceType("fake-crawl", FakeCrawlConfig, _fake_connector))
    yield clean_stack
    unregister("fake-crawl")


def test_a_crawl_follows_links_within_depth_and_follows_the_site(fake_crawl: LocalStack) -> None:
    stack = fake_crawl
    api = Api(stack)
    kb = api.create_kb("crawl")
    home, a, b, deep = (f"https://site.example/{p}" for p in ("home", "a", "b", "deep"))
    SITE.pages.update(
        {
            home: Page("# Home\n\nWelcome.\n", [a, b]),
            a: Page("# A\n\nApples.\n", [deep, home]),
            b: Page("# B\n\nBananas.\n", [a]),
            deep: Page("# Deep\n\nToo deep to reach.\n"),
        }
    )
    created = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={"type": "fake-crawl", "config": {"url": home, "max_depth": 1}},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    source_id = (created.json or {})["id"]
    stack.wait_idle(180)
    source = _source(api, source_id)
    assert source["counts"] == _counts(added=3)
    assert sorted(SITE.fetched) == sorted([home, a, b])  # each once; deep is beyond depth
    assert sorted(d["origin"]["url"] for d in _documents(api, kb["id"])) == sorted([home, a, b])

    # Unchanged: nothing fetched or parsed again.
    SITE.fetched.clear()
    parsed_before = _parse_messages(stack)
    assert _sync(stack, api, source_id)["counts"] == _counts(unchanged=3)
    assert SITE.fetched == [] and _parse_messages(stack) == parsed_before

    # A changed page is a new version; a page no longer linked (or gone) is deleted.
    SITE.pages[a] = Page("# A\n\nApricots now.\n", [home], etag="2")
    SITE.pages[home] = Page("# Home\n\nWelcome.\n", [a])
    del SITE.pages[b]
    source = _sync(stack, api, source_id)
    assert source["counts"] == _counts(updated=1, unchanged=1, deleted=1)
    by_url = {d["origin"]["url"]: d for d in _documents(api, kb["id"])}
    assert sorted(by_url) == sorted([home, a])
    assert [v["number"] for v in api.document(by_url[a]["id"])["versions"]] == [2, 1]


def test_a_run_stops_at_its_item_cap_and_then_deletes_nothing_unseen(
    fake_crawl: LocalStack,
) -> None:
    stack = fake_crawl
    api = Api(stack)
    kb = api.create_kb("capped")
    home = "https://site.example/home"
    pages = [f"https://site.example/p{n}" for n in range(4)]
    SITE.pages[home] = Page("# Home\n\nIndex.\n", pages)
    for n, url in enumerate(pages):
        SITE.pages[url] = Page(f"# Page {n}\n\nText {n}.\n")
    created = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={"type": "fake-crawl", "config": {"url": home}},
    )
    source_id = (created.json or {})["id"]
    stack.wait_idle(180)
    assert _source(api, source_id)["counts"] == _counts(added=5)

    patched = api.patch(f"/v1/sources/{source_id}", json={"config": {"url": home, "max_items": 3}})
    assert patched.status_code == 200, patched.get_data(as_text=True)
    source = _sync(stack, api, source_id)
    assert source["last_run"]["truncated"] is True
    assert sum(source["counts"].values()) == 3
    # The two pages the capped run did not reach are not taken for gone.
    assert len(_documents(api, kb["id"])) == 5


def test_an_item_failing_on_every_attempt_fails_alone(fake_crawl: LocalStack) -> None:
    stack = fake_crawl
    api = Api(stack)
    kb = api.create_kb("flaky")
    home, broken = "https://site.example/home", "https://site.example/broken"
    SITE.pages.update({home: Page("# Home\n\nHi.\n", [broken]), broken: Page(BROKEN)})
    created = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={"type": "fake-crawl", "config": {"url": home}},
    )
    source_id = (created.json or {})["id"]
    stack.wait_idle(180)
    # The sync function's last attempt (Cloud Tasks' retry count) fails the item itself.
    source = _source(api, source_id)
    assert source["last_run"]["status"] == "partial"
    assert source["counts"] == _counts(added=1, failed=1)
    assert "503" in source["last_error"] and broken in source["last_error"]
    # A malformed task is acknowledged, not retried.
    answer = stack.host.apps["sync"].test_client().post("/", data=b"{not json")
    assert answer.status_code == 200 and answer.json["status"] == "ignored"


# Redelivery and loss, with a queue that records tasks and the test delivering them.


class RecordingQueue:
    """Records sync tasks by name instead of delivering them (the TaskQueue protocol)."""

    def __init__(self) -> None:
        self.tasks: dict[str, SyncTask] = {}

    def enqueue(self, task_name: str, task: Message) -> bool:
        assert isinstance(task, SyncTask)
        if task_name in self.tasks:
            return False
        self.tasks[task_name] = task
        return True

    def take(self) -> list[SyncTask]:
        tasks = list(self.tasks.values())
        self.tasks.clear()
        return tasks


@pytest.fixture
def recorded(fake_crawl: LocalStack) -> Iterator[tuple[LocalStack, RecordingQueue]]:
    queue = RecordingQueue()
    fake_crawl.runtime.sync_tasks = queue
    yield fake_crawl, queue
    fake_crawl.runtime.sync_tasks = fake_crawl.sync_tasks


def test_a_redelivered_task_changes_nothing_twice(
    recorded: tuple[LocalStack, RecordingQueue],
) -> None:
    stack, queue = recorded
    runtime = stack.runtime
    api = Api(stack)
    kb = api.create_kb("redelivered")
    home, a = "https://site.example/home", "https://site.example/a"
    SITE.pages.update({home: Page("# Home\n\nHi.\n", [a]), a: Page("# A\n\nApples.\n", [home])})
    source_id = (
        api.post(
            f"/v1/knowledge-bases/{kb['id']}/sources",
            json={"type": "fake-crawl", "config": {"url": home, "max_depth": 2}},
        ).json
        or {}
    )["id"]

    [roots] = queue.take()
    assert sync.run_task(runtime, roots) == "listed"
    assert sync.run_task(runtime, roots) == "ignored"  # delivered again
    [home_task] = queue.take()
    assert home_task.key == home
    assert sync.run_task(runtime, home_task) == "visited"
    assert sync.run_task(runtime, home_task) == "ignored"
    [a_task] = queue.take()  # home links to a; a links back to home: not claimed again
    assert sync.run_task(runtime, a_task) == "visited"
    assert queue.take() == []
    stack.wait_idle(180)

    source = _source(api, source_id)
    assert source["status"] == "idle" and source["counts"] == _counts(added=2)
    documents = _documents(api, kb["id"])
    assert len(documents) == 2
    assert all(len(api.document(d["id"])["versions"]) == 1 for d in documents)
    assert sorted(SITE.fetched) == [a, home]


def test_a_task_arriving_after_its_source_was_deleted_creates_nothing(
    recorded: tuple[LocalStack, RecordingQueue],
) -> None:
    stack, queue = recorded
    runtime = stack.runtime
    api = Api(stack)
    kb = api.create_kb("deleted-midway")
    home = "https://site.example/home"
    SITE.pages[home] = Page("# Home\n\nHi.\n")
    created = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={"type": "fake-crawl", "config": {"url": home}},
    )
    source_id = (created.json or {})["id"]
    [roots] = queue.take()
    sync.run_task(runtime, roots)
    [home_task] = queue.take()
    assert api.delete(f"/v1/sources/{source_id}").status_code == 204
    assert sync.run_task(runtime, home_task) == "ignored"
    stack.wait_idle()
    assert _documents(api, kb["id"]) == [] and SITE.fetched == []


def test_the_sweep_recovers_a_lost_task_and_fails_one_lost_too_often(
    recorded: tuple[LocalStack, RecordingQueue],
) -> None:
    stack, queue = recorded
    runtime = stack.runtime
    api = Api(stack)
    kb = api.create_kb("lost")
    home, a, b = (f"https://site.example/{p}" for p in ("home", "a", "b"))
    SITE.pages.update(
        {home: Page("# Home\n\nHi.\n", [a, b]), a: Page("# A\n\nA.\n"), b: Page("# B\n\nB.\n")}
    )
    source_id = (
        api.post(
            f"/v1/knowledge-bases/{kb['id']}/sources",
            json={"type": "fake-crawl", "config": {"url": home}},
        ).json
        or {}
    )["id"]
    queue.take()  # the roots task is lost
    report = sync.sweep_sources(runtime, stall_after_s=0, max_sweeps=3)
    [roots] = queue.take()
    assert report.redriven and roots.key is None
    sync.run_task(runtime, roots)
    [home_task] = queue.take()
    sync.run_task(runtime, home_task)
    children = {task.key: task for task in queue.take()}
    sync.run_task(runtime, children[a])  # the task for b is lost, again and again
    assert _source(api, source_id)["status"] == "running"

    for sweep in (2, 3):
        report = sync.sweep_sources(runtime, stall_after_s=0, max_sweeps=3)
        assert [task.key for task in queue.take()] == [b], sweep
    report = sync.sweep_sources(runtime, stall_after_s=0, max_sweeps=3)
    assert report.failed
    [end] = queue.take()  # the item failed; one task ends the run
    assert end.key is None and sync.run_task(runtime, end) == "finished"
    stack.wait_idle(180)
    source = _source(api, source_id)
    assert source["status"] == "idle" and source["last_run"]["status"] == "partial"
    assert source["counts"] == _counts(added=2, failed=1)
    assert b in (source["last_error"] or "")


def test_a_due_schedule_starts_one_run_per_due_time(
    recorded: tuple[LocalStack, RecordingQueue],
) -> None:
    stack, queue = recorded
    runtime = stack.runtime
    api = Api(stack)
    kb = api.create_kb("scheduled")
    SITE.pages["https://site.example/home"] = Page("# Home\n\nHi.\n")
    created = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={
            "type": "fake-crawl",
            "config": {"url": "https://site.example/home"},
            "schedule": {"every": "1h"},
            "paused": True,
        },
    )
    source = dict(created.json or {})
    assert source["schedule"] == {"every": "1h"} and source["next_run_at"] is None
    stack.database.run(
        "UPDATE sources SET next_run_at = now() - interval '1 minute' WHERE id = CAST(:s AS uuid)",
        s=source["id"],
    )
    assert sync.sweep_sources(runtime).started == []  # paused
    unpaused = api.patch(f"/v1/sources/{source['id']}", json={"paused": False})
    assert unpaused.status_code == 200
    stack.database.run(
        "UPDATE sources SET next_run_at = now() - interval '1 minute' WHERE id = CAST(:s AS uuid)",
        s=source["id"],
    )
    first = sync.sweep_sources(runtime)
    assert len(first.started) == 1
    assert sync.sweep_sources(runtime).started == []  # running, and no longer due
    source = _source(api, source["id"])
    assert source["current_run"]["trigger"] == "schedule" and source["next_run_at"]
    assert len(queue.take()) == 1


# A loopback listener that records whether anything connected.


@dataclass
class Listener:
    url: str = ""
    requests: list[str] = field(default_factory=list)


class Loopback:
    def __enter__(self) -> Listener:
        state = Listener()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        state.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return state

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
