"""The API reference on the local stack: /v1/openapi.json and the /v1/docs page."""

from __future__ import annotations

import re

from werkzeug.test import Client

from scripts.localstack.stack import LocalStack
from shared.api.reference import document

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
