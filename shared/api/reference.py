"""Routes of the API reference: the OpenAPI document and the page that renders it.

Served by the ``manage`` function. ``/v1/openapi.json`` is built from every route's
models on the first request for it and kept for the instance's life: building it
imports every routes module (the ``answer`` function's included), which no other
route of ``manage`` needs, so that cost falls on the reference only, never on a cold
start. ``/v1/docs`` is Swagger UI from the ``swagger-ui-bundle-v2`` package, served
from here: the page loads nothing from any other origin.
"""

from __future__ import annotations

import functools
from typing import Any

import swagger_ui_bundle
from werkzeug.wrappers import Request, Response

from shared.api.http import Content, Reply, Route, model_response
from shared.auth import Principal
from shared.errors import NotFoundError
from shared.runtime import Runtime

DOCS = "/v1/docs"
DOCUMENT = "/v1/openapi.json"
# The packaged files the page loads, and how each is sent.
ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css",
    "index.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
INITIALIZER = "init.js"
# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
INITIALIZER_JS = f"""window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{DOCUMENT}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  }});
}};
"""
PAGE = f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>Ragline API reference</title>
    <link rel="stylesheet" type="text/css" href="{DOCS}/swagger-ui.css">
    <link rel="stylesheet" type="text/css" href="{DOCS}/index.css">
    <link rel="icon" type="image/png" href="{DOCS}/favicon-32x32.png" sizes="32x32">
    <link rel="icon" type="image/png" href="{DOCS}/favicon-16x16.png" sizes="16x16">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{DOCS}/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="{DOCS}/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="{DOCS}/{INITIALIZER}" charset="UTF-8"></script>
  </body>
</html>
"""
CACHED = {"Cache-Control": "public, max-age=3600"}
PAGE_CONTENT = Content(("text/html",), "the API reference page (Swagger UI)")
ASSET_CONTENT = Content(
    tuple(dict.fromkeys([*ASSETS.values(), "text/javascript"])),
    "a static file of the API reference page",
    binary=True,
)


class OpenApiDocument(Reply):
    """The OpenAPI 3.1 document of the API."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


@functools.cache
def document() -> dict[str, Any]:
    """The API's OpenAPI document (built once per instance, on first use)."""
    from shared.api.catalog import API_ROUTES
    from shared.api.openapi import openapi_document

    return openapi_document([*API_ROUTES, *ROUTES])


def get_openapi(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The OpenAPI 3.1 document of every route, generated from their pydantic models."""
    return model_response(OpenApiDocument, document(), headers=dict(CACHED))


def get_docs(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The API reference page: Swagger UI rendering ``/v1/openapi.json``."""
    return Response(PAGE, mimetype="text/html", headers=dict(CACHED))


def get_docs_asset(
    runtime: Runtime, request: Request, principal: Principal, asset: str
) -> Response:
    """A static file of the API reference page (packaged, never from a CDN)."""
    if asset == INITIALIZER:
        return Response(INITIALIZER_JS, mimetype="text/javascript", headers=dict(CACHED))
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFoundError(f"no file {asset!r} in the API reference", code="not_found")
    data = (swagger_ui_bundle.swagger_ui_path / asset).read_bytes()
    return Response(data, mimetype=media_type, headers=dict(CACHED))


ROUTES = [
    Route(
        "GET",
        DOCUMENT,
        get_openapi,
        public=True,
        responses={200: OpenApiDocument},
        tags=("reference",),
    ),
    Route("GET", DOCS, get_docs, public=True, responses={200: PAGE_CONTENT}, tags=("reference",)),
    Route(
        "GET",
        f"{DOCS}/<asset>",
        get_docs_asset,
        public=True,
        responses={200: ASSET_CONTENT},
        tags=("reference",),
    ),
]
