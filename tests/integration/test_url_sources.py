"""A ``url`` source end to end: the sources API, the sync function and the crawler of
shared/sources/web against a real site on the loopback interface (the only address the
test allow-lists), into the same pipeline as uploads.

A crawl follows links within depth, obeys robots.txt, ingests HTML and linked DOCX; a
re-sync of unchanged pages parses nothing; a changed page becomes a new version; a page
that disappears deletes its document.
"""

from __future__ import annotations

import io
from typing import Any

import docx
import pytest

from scripts.localstack.stack import LocalStack
from tests.support.api import Api
from tests.support.outbound import allow_loopback
from tests.support.web_site import Page, Site


def _docx(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _versions_sent_to_parse(stack: LocalStack) -> int:
    topic = stack.settings.topic_parse
    return len(
        {
            message["attributes"]["version_id"]
            for name, message in stack.bus.published
            if name == topic
        }
    )


def _documents_by_url(api: Api, kb_id: str) -> dict[str, dict[str, Any]]:
    response = api.get(f"/v1/knowledge-bases/{kb_id}/documents")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {doc["origin"]["url"]: doc for doc in (response.json or {})["documents"]}


def _synced(stack: LocalStack, api: Api, source_id: str) -> dict[str, Any]:
    response = api.post(f"/v1/sources/{source_id}/sync")
    assert response.status_code == 202, response.get_data(as_text=True)
    stack.wait_idle(180)
    source = api.get(f"/v1/sources/{source_id}")
    assert source.status_code == 200
    return dict(source.json or {})


@pytest.fixture
def web(clean_stack: LocalStack, site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    """The site, reachable by the stack's guarded client (loopback allow-listed)."""
    allow_loopback(clean_stack, monkeypatch)
    site.pages["/robots.txt"] = Page(
        b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    site.html("/", "/guide", "/faq", "/private/salaries", "/handbook.docx", "/far", etag='"home-1"')
    site.html("/guide", "/", text="The quartzite pipeline ingests every file.", etag='"guide-1"')
    site.html("/faq", text="Marmalade questions are answered here.", etag='"faq-1"')
    site.html("/private/salaries", text="Never to be crawled.")
    site.html("/far", "/far/away", text="One hop from home.", etag='"far-1"')
    site.html("/far/away", text="Two hops: beyond the source's depth.")
    site.pages["/handbook.docx"] = Page(
        _docx("The handbook grants twenty-six vacation days."),
        content_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        etag='"handbook-1"',
    )
    return site


def test_a_crawl_ingests_within_depth_and_robots_and_follows_the_site(
    clean_stack: LocalStack, web: Site
) -> None:
    stack = clean_stack
    api = Api(stack)
    kb = api.create_kb("website")
    created = api.post(
        f"/v1/knowledge-bases/{kb['id']}/sources",
        json={"type": "url", "config": {"url": web.url("/"), "mode": "crawl", "max_depth": 1}},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    source_id = (created.json or {})["id"]
    stack.wait_idle(180)

    source = dict(api.get(f"/v1/sources/{source_id}").json or {})
    pages = {web.url(path) for path in ("/", "/guide", "/faq", "/far", "/handbook.docx")}
    documents = _documents_by_url(api, kb["id"])
    assert set(documents) == pages
    assert {doc["status"] for doc in documents.values()} == {"ready"}
    assert source["counts"]["added"] == 5
    assert source["counts"]["failed"] == 1  # /private/salaries: robots.txt
    requested = web.requested()
    assert "/private/salaries" not in requested and "/far/away" not in requested

    # The crawled text answers, and its passage names the page it came from.
    found = api.post(
        "/v1/retrieve", json={"knowledge_base_ids": [kb["id"]], "query": "twenty-six vacation days"}
    )
    assert found.status_code == 200, found.get_data(as_text=True)
    top = (found.json or {})["passages"][0]
    assert top["document_id"] == documents[web.url("/handbook.docx")]["id"]

    # Unchanged: every page answers 304 or hashes the same; nothing is parsed again.
    parsed_before = _versions_sent_to_parse(stack)
    source = _synced(stack, api, source_id)
    assert source["counts"]["unchanged"] == 5 and source["counts"]["added"] == 0
    assert _versions_sent_to_parse(stack) == parsed_before

    # A changed page is a new version; a page that disappears deletes its document.
    web.html("/guide", "/", text="The quartzite pipeline now skips drafts.", etag='"guide-2"')
    del web.pages["/faq"]
    source = _synced(stack, api, source_id)
    assert source["counts"]["updated"] == 1 and source["counts"]["deleted"] == 1
    documents = _documents_by_url(api, kb["id"])
    assert web.url("/faq") not in documents
    guide = api.document(documents[web.url("/guide")]["id"])
    assert [version["number"] for version in guide["versions"]] == [2, 1]


def test_a_url_the_guard_refuses_is_a_400_and_never_a_connection(
    clean_stack: LocalStack, web: Site
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("refused")
    for url in ("http://127.0.0.2/", "http://[::ffff:169.254.169.254]/", "http://0x0a.0.0.1/"):
        response = api.post(
            f"/v1/knowledge-bases/{kb['id']}/sources",
            json={"type": "url", "config": {"url": url, "mode": "crawl"}},
        )
        assert response.status_code == 400, (url, response.get_data(as_text=True))
    assert web.requested() == []
