"""The API reference on the local stack: /v1/openapi.json and the /v1/docs page."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.test import Client

from scripts.localstack.stack import LocalStack
from shared.api.reference import document
from tests.support.stack import served

# Headless, and no name resolves but 127.0.0.1: a CDN fetch would fail, and show.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# Any absolute URL or protocol-relative reference in an attribute (src, href, url: ...).
EXTERNAL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""")


def test_the_document_is_served_without_a_credential(stack: LocalStack) -> None:
    response = Client(stack.app).get("/v1/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json == document()


def test_the_docs_page_and_every_asset_it_loads_come_from_the_api(stack: LocalStack) -> None:
    client = Client(stack.app)
    page = client.get("/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not EXTERNAL.findall(html), EXTERNAL.findall(html)
    loaded = re.findall(r"""(?:src|href)="([^"]+)""", html)
    assert any(path.endswith("swagger-ui-bundle.js") for path in loaded)
    for path in loaded:
        assert path.startswith("/v1/docs/"), path
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert asset.get_data(), path
    initializer = client.get("/v1/docs/init.js").get_data(as_text=True)
    assert '"/v1/openapi.json"' in initializer
    assert "validatorUrl: null" in initializer  # else the page posts the schema elsewhere
    assert not EXTERNAL.findall(initializer)


def test_a_file_not_in_the_page_is_not_served(stack: LocalStack) -> None:
    client = Client(stack.app)
    for name in ("index.html", "swagger-ui.js.map", "..%2F__init__.py", "oauth2-redirect.html"):
        response = client.get(f"/v1/docs/{name}")
        assert response.status_code == 404, name
        assert response.json is not None and response.json["error"]["code"] == "not_found"


def test_a_browser_renders_every_operation_from_the_api_alone(
    stack: LocalStack, tmp_path: Path
) -> None:
    chromium = os.environ.get("RAGLINE_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        # .ci/run installs Debian's chromium: missing there is an error.
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no chromium found")
    assert chromium is not None
    spec = document()
    operations = sum(
        method in ("get", "put", "post", "delete", "patch")
        for item in spec["paths"].values()
        for method in item
    )
    requested: list[str] = []
    with served(stack.app) as url, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{url}/v1/docs")
            page.wait_for_selector(".opblock", timeout=60_000)
            rendered = page.locator(".opblock").count()
            title = page.locator(".info .title").inner_text()
            errors = page.locator(".errors-wrapper").count()
        finally:
            context.close()
    assert rendered == operations
    assert spec["info"]["title"] in title
    assert errors == 0
    # Everything the page loaded came from the API's own origin (no CDN, no validator).
    assert requested and all(address.startswith(f"{url}/") for address in requested), requested


@pytest.mark.parametrize(
    "path",
    [
        "/v1/knowledge-bases/a%0Ab/documents",  # upload: the framework's routing fails
        "/v1/documents/a%0Ab",  # manage
        "/v1/turns/a%0Ab/citations",  # answer
        "/favicon.ico",
    ],
)
def test_a_path_the_framework_cannot_route_answers_in_the_error_shape(
    stack: LocalStack, path: str
) -> None:
    response = Client(stack.app).get(path, headers={"Authorization": "Bearer x"})
    assert response.status_code == 404
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    assert response.json is not None and response.json["error"]["code"] == "not_found"
