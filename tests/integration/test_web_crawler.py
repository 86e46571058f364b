"""The url connector crawls a real HTTP server on the loopback interface.

The server (a small site held in a dict) records every request it gets, so a test can
prove a page was never asked for (robots.txt, scope) or answered 304 with no body. Only
127.0.0.1 is allow-listed, through the test helper; everything else is still refused.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import docx
import pytest

from shared.errors import UpstreamError
from shared.parsing.detect import DOCX, PDF, sniff
from shared.sources.connector import ItemRef, Outcome, Revision, Visit
from shared.sources.web.config import UrlSourceConfig
from shared.sources.web.connector import UrlConnector
from shared.sources.web.fetch import PageFetcher
from tests.support.outbound import loopback_client
from tests.support.web_site import Page, Site

MAX_BYTES = 1024 * 1024


def connector_for(site: Site, path: str = "/", **config: object) -> UrlConnector:
    settings = UrlSourceConfig.model_validate({"url": site.url(path), **config})
    return UrlConnector(settings, PageFetcher(loopback_client(timeout_s=5), max_bytes=MAX_BYTES))


def crawl(
    connector: UrlConnector, revisions: dict[str, Revision] | None = None
) -> dict[str, Visit]:
    """A sync run in miniature: roots, then every child once, up to the item cap."""
    revisions = revisions or {}
    queue = list(connector.roots())
    visits: dict[str, Visit] = {}
    while queue and len(visits) < connector.config.max_items:
        item = queue.pop(0)
        if item.key in visits:
            continue
        visits[item.key] = connector.visit(item, revisions.get(item.key))
        queue.extend(visits[item.key].children)
    return visits


def revisions_of(visits: dict[str, Visit]) -> dict[str, Revision]:
    return {key: v.document.revision for key, v in visits.items() if v.document is not None}


def small_docx(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_links_are_followed_within_depth_scope_and_patterns(site: Site) -> None:
    site.html(
        "/",
        "/a",
        "b",
        "/a#section",
        "/private/x",
        "/logo.png",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "https://elsewhere.example.com/page",
    )
    site.pages["/"].body = site.pages["/"].body.replace(
        b"</body>", b'<a rel="nofollow" href="/hidden">h</a></body>'
    )
    site.html("/a", "/a/deeper")
    site.html("/b")
    site.html("/a/deeper", "/a/deepest")
    site.html("/a/deepest")
    site.html("/private/x")
    site.html("/hidden")

    visits = crawl(connector_for(site, mode="crawl", max_depth=2, exclude=["/private/*"]))

    expected = {site.url(path) for path in ("/", "/a", "/b", "/a/deeper")}
    assert set(visits) == expected
    assert all(v.outcome is Outcome.FETCHED for v in visits.values())
    asked = set(site.requested())
    for never in ("/a/deepest", "/private/x", "/logo.png", "/hidden"):
        assert never not in asked, f"{never} is out of scope and must not be requested"
    root = visits[site.url("/")]
    assert [child.depth for child in root.children] == [1, 1]
    assert root.document is not None
    assert root.document.filename == "127.0.0.1.html"
    assert root.document.revision.version is not None


def test_include_patterns_limit_the_pages_followed(site: Site) -> None:
    site.html("/", "/docs/one", "/docs/two", "/blog/post")
    for path in ("/docs/one", "/docs/two", "/blog/post"):
        site.html(path)

    visits = crawl(connector_for(site, mode="crawl", include=["/docs/*"], use_sitemap=False))

    assert set(visits) == {site.url(p) for p in ("/", "/docs/one", "/docs/two")}
    assert "/blog/post" not in site.requested()


def test_max_pages_caps_the_run(site: Site) -> None:
    site.html("/", *(f"/p{n}" for n in range(10)))
    for n in range(10):
        site.html(f"/p{n}")

    connector = connector_for(site, mode="crawl", max_pages=4, use_sitemap=False)
    visits = crawl(connector)

    assert connector.config.max_items == 4
    assert len(visits) == 4


def test_robots_txt_is_obeyed_and_a_disallowed_page_never_requested(site: Site) -> None:
    robots = "User-agent: *\nDisallow: /\n\nUser-agent: Ragline\nDisallow: /secret\n"
    site.pages["/robots.txt"] = Page(robots.encode(), content_type="text/plain")
    site.html("/", "/open", "/secret/plans")
    site.html("/open")
    site.html("/secret/plans")

    visits = crawl(connector_for(site, mode="crawl", use_sitemap=False))

    secret = visits[site.url("/secret/plans")]
    assert secret.outcome is Outcome.FAILED
    assert secret.error_code == "robots_disallowed"
    assert visits[site.url("/open")].outcome is Outcome.FETCHED
    assert "/secret/plans" not in site.requested()
    assert site.requested().count("/robots.txt") == 1, "fetched once per origin"


def test_a_failing_robots_txt_disallows_the_whole_run(site: Site) -> None:
    site.pages["/robots.txt"] = Page(b"oops", status=503, content_type="text/plain")
    site.html("/")

    visits = crawl(connector_for(site))

    assert visits[site.url("/")].error_code == "robots_disallowed"
    assert site.requested() == ["/robots.txt"]


def test_sitemap_urls_are_roots(site: Site) -> None:
    site.pages["/robots.txt"] = Page(
        f"User-agent: *\nAllow: /\nSitemap: {site.url('/maps/index.xml')}\n".encode(),
        content_type="text/plain",
    )
    site.pages["/maps/index.xml"] = Page(
        (
            '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{site.url('/maps/pages.xml.gz')}</loc></sitemap></sitemapindex>"
        ).encode(),
        content_type="application/xml",
    )
    urlset = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url('/orphan')}</loc><lastmod>2026-01-02</lastmod></url>"
        f"<url><loc>{site.url('/excluded/page')}</loc></url>"
        "<url><loc>https://elsewhere.example.com/x</loc></url></urlset>"
    )
    site.pages["/maps/pages.xml.gz"] = Page(
        gzip.compress(urlset.encode()), content_type="application/gzip"
    )
    site.html("/")  # links to nothing: the orphan is reached through the sitemap only
    site.html("/orphan")

    connector = connector_for(site, mode="crawl", exclude=["/excluded/*"])
    roots = connector.roots()
    visits = crawl(connector)

    assert roots[1:] == [ItemRef(site.url("/orphan"), 1, {"lastmod": "2026-01-02"})]
    assert visits[site.url("/orphan")].outcome is Outcome.FETCHED


def test_a_sitemap_with_entities_is_not_expanded(site: Site) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url('/x')}&lol2;</loc></url></urlset>"
    )
    site.pages["/sitemap.xml"] = Page(bomb.encode(), content_type="application/xml")
    site.html("/")

    roots = connector_for(site, mode="crawl").roots()

    assert [root.key for root in roots] == [site.url("/")]


def test_etag_and_last_modified_make_an_unchanged_file_cost_no_body(site: Site) -> None:
    site.html("/page", etag='"v1"')
    site.html("/dated", last_modified="Wed, 21 Oct 2015 07:28:00 GMT")

    for path, header in (("/page", "if-none-match"), ("/dated", "if-modified-since")):
        connector = connector_for(site, path)
        first = connector.visit(ItemRef(site.url(path)), None)
        assert first.outcome is Outcome.FETCHED and first.document is not None

        again = connector.visit(ItemRef(site.url(path)), first.document.revision)

        assert again.outcome is Outcome.UNCHANGED
        assert again.document is None
        last = site.log[-1]
        assert (last.path, last.status) == (path, 304), "answered 304: no body sent"
        assert header in last.headers


def test_a_changed_page_becomes_a_new_version(site: Site) -> None:
    site.html("/page", text="first", etag='"v1"')
    connector = connector_for(site, "/page")
    first = connector.visit(ItemRef(site.url("/page")), None)
    assert first.document is not None

    site.html("/page", text="second", etag='"v2"')
    changed = connector.visit(ItemRef(site.url("/page")), first.document.revision)

    assert changed.outcome is Outcome.FETCHED and changed.document is not None
    assert b"second" in changed.document.content
    assert changed.document.revision.etag == '"v2"'
    assert changed.document.revision != first.document.revision


def test_a_resync_of_an_unchanged_site_parses_nothing_and_keeps_every_page(
    site: Site, corpus: Path
) -> None:
    pdf = (corpus / "2022 Q3 AAPL.pdf").read_bytes()
    site.html("/", "/a", "/report.pdf", etag='"root"')
    site.html("/a", "/b", etag='"a"')
    site.html("/b", last_modified="Wed, 21 Oct 2015 07:28:00 GMT")
    site.pages["/report.pdf"] = Page(pdf, content_type="application/pdf", etag='"pdf"')
    connector = connector_for(site, mode="crawl", max_depth=2, use_sitemap=False)
    first = crawl(connector)
    assert {v.outcome for v in first.values()} == {Outcome.FETCHED}
    site.log.clear()

    again = crawl(connector, revisions_of(first))

    assert set(again) == set(first), "every page is still reached"
    assert {v.outcome for v in again.values()} == {Outcome.UNCHANGED}
    assert all(v.document is None for v in again.values())
    statuses = {served.path: served.status for served in site.log}
    # Leaves (the PDF, the page at max depth) are asked conditionally: 304, no body.
    assert statuses["/report.pdf"] == 304
    assert statuses["/b"] == 304
    # Pages whose links are followed are read to name their children again.
    assert statuses["/"] == 200 and statuses["/a"] == 200
    assert [c.key for c in again[site.url("/")].children] == [
        site.url("/a"),
        site.url("/report.pdf"),
    ]


def test_a_removed_page_is_gone(site: Site) -> None:
    site.html("/", "/a", "/b")
    site.html("/a")
    site.html("/b")
    connector = connector_for(site, mode="crawl", use_sitemap=False)
    first = crawl(connector)

    del site.pages["/b"]
    site.pages["/a"] = Page(b"", status=410)
    again = crawl(connector, revisions_of(first))

    assert again[site.url("/b")].outcome is Outcome.GONE
    assert again[site.url("/a")].outcome is Outcome.GONE


def test_redirects_are_followed_within_the_cap(site: Site) -> None:
    for hop in range(5):
        site.pages[f"/r{hop}"] = Page(status=301, location=f"/r{hop + 1}")
    site.html("/r5")
    for hop in range(6):
        site.pages[f"/s{hop}"] = Page(status=302, location=site.url(f"/s{hop + 1}"))
    site.html("/s6")

    five = connector_for(site, "/r0").visit(ItemRef(site.url("/r0")), None)
    six = connector_for(site, "/s0").visit(ItemRef(site.url("/s0")), None)

    assert five.outcome is Outcome.FETCHED and five.document is not None
    assert five.document.origin_url == site.url("/r5")
    assert five.document.filename == "r5.html"
    assert six.outcome is Outcome.FAILED
    assert six.error_code == "too_many_redirects"
    assert "/s6" not in site.requested()


def test_a_redirect_to_an_unescaped_location_is_followed_escaped(site: Site) -> None:
    site.pages["/moved"] = Page(status=301, location="/new home/ü.html")
    site.html("/new%20home/%C3%BC.html")

    visit = connector_for(site, "/moved").visit(ItemRef(site.url("/moved")), None)

    assert visit.document is not None
    assert visit.document.origin_url == site.url("/new%20home/%C3%BC.html")
    assert visit.document.filename == "ü.html"


def test_a_redirect_loop_fails(site: Site) -> None:
    site.pages["/loop1"] = Page(status=302, location="/loop2")
    site.pages["/loop2"] = Page(status=307, location="/loop1#again")

    visit = connector_for(site, "/loop1").visit(ItemRef(site.url("/loop1")), None)

    assert visit.outcome is Outcome.FAILED
    assert visit.error_code == "redirect_loop"
    assert site.requested().count("/loop1") == 1


@pytest.mark.parametrize("send_length", [True, False])
def test_an_oversized_page_is_refused_not_truncated(site: Site, send_length: bool) -> None:
    body = b"<html><body>" + b"<p>filler</p>" * (MAX_BYTES // 10) + b"</body></html>"
    site.pages["/big"] = Page(body, send_length=send_length)

    visit = connector_for(site, "/big").visit(ItemRef(site.url("/big")), None)

    assert visit.outcome is Outcome.FAILED
    assert visit.error_code == "too_large"
    assert visit.document is None


def test_a_compressed_body_is_capped_once_decoded(site: Site) -> None:
    bomb = gzip.compress(b"<html>" + b" " * (MAX_BYTES * 8))
    site.pages["/bomb"] = Page(bomb, headers={"Content-Encoding": "gzip"})
    small = b"<!doctype html><html><body><p>zipped</p></body></html>"
    site.pages["/zipped"] = Page(gzip.compress(small), headers={"Content-Encoding": "gzip"})

    bombed = connector_for(site, "/bomb").visit(ItemRef(site.url("/bomb")), None)
    zipped = connector_for(site, "/zipped").visit(ItemRef(site.url("/zipped")), None)

    assert len(bomb) < MAX_BYTES
    assert bombed.error_code == "too_large"
    assert zipped.document is not None and zipped.document.content == small
    assert site.log[-1].headers["accept-encoding"] == "identity"


def test_linked_pdf_and_docx_files_are_documents_typed_by_their_bytes(
    site: Site, corpus: Path
) -> None:
    pdf = (corpus / "2022 Q3 AAPL.pdf").read_bytes()
    site.html("/", "/files/report.pdf", "/files/memo", "/files/picture")
    site.pages["/files/report.pdf"] = Page(pdf, content_type="application/octet-stream")
    site.pages["/files/memo"] = Page(small_docx("A memo about the crawler."), content_type=None)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    site.pages["/files/picture"] = Page(png, content_type="text/html")  # the header lies

    visits = crawl(connector_for(site, mode="crawl", use_sitemap=False))

    report = visits[site.url("/files/report.pdf")]
    memo = visits[site.url("/files/memo")]
    assert report.document is not None and memo.document is not None
    assert report.document.content == pdf
    assert sniff(report.document.content).content_type == PDF
    assert sniff(memo.document.content).content_type == DOCX
    assert (report.document.filename, memo.document.filename) == ("report.pdf", "memo.docx")
    assert report.document.content_type == "application/octet-stream"  # kept as a hint
    assert report.children == () and memo.children == ()
    picture = visits[site.url("/files/picture")]
    assert picture.outcome is Outcome.SKIPPED
    assert picture.error_code == "unsupported_type"


def test_server_errors_are_retried_and_client_errors_fail(site: Site) -> None:
    site.pages["/busy"] = Page(b"", status=503)
    site.pages["/limited"] = Page(b"", status=429)
    site.pages["/private"] = Page(b"", status=403)

    for path in ("/busy", "/limited"):
        with pytest.raises(UpstreamError) as raised:
            connector_for(site, path).visit(ItemRef(site.url(path)), None)
        assert raised.value.retryable
    denied = connector_for(site, "/private").visit(ItemRef(site.url("/private")), None)

    assert denied.outcome is Outcome.FAILED
    assert denied.error_code == "http_403"


def test_a_redirect_off_the_allow_list_is_refused(site: Site) -> None:
    # 127.0.0.1 is allow-listed for the test server; 127.0.0.2 is still loopback.
    site.pages["/away"] = Page(status=302, location="http://127.0.0.2:9/")
    site.pages["/creds"] = Page(status=302, location=site.url("/x").replace("//", "//u:p@"))
    site.pages["/file"] = Page(status=302, location="file:///etc/passwd")

    for path in ("/away", "/creds", "/file"):
        visit = connector_for(site, path).visit(ItemRef(site.url(path)), None)

        assert visit.outcome is Outcome.FAILED, path
        assert visit.error_code == "url_forbidden", path
    assert "/x" not in site.requested()
