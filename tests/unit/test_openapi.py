"""The OpenAPI document: every served route in it and nothing else, and valid 3.1."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from werkzeug.routing import Map

from shared.api.openapi import openapi_path
from shared.api.reference import document

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _served() -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every route the HTTP functions' routers dispatch."""
    import functions.answer
    import functions.manage
    import functions.upload

    maps: list[Map] = [
        module._router._map for module in (functions.answer, functions.manage, functions.upload)
    ]
    return {
        (method, openapi_path(rule.rule))
        for url_map in maps
        for rule in url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def _documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_served_route_is_in_the_document() -> None:
    missing = _served() - _documented(document())
    assert not missing, f"served but not in /v1/openapi.json: {sorted(missing)}"


def test_every_documented_operation_is_served() -> None:
    extra = _documented(document()) - _served()
    assert not extra, f"in /v1/openapi.json but served by no function: {sorted(extra)}"


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = document()
    assert spec["openapi"].startswith("3.1.")
    validate(spec)


def test_operation_ids_are_unique() -> None:
    ids = [
        operation["operationId"]
        for item in document()["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert len(ids) == len(set(ids))


def test_public_routes_need_no_credential_and_the_others_a_bearer() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            public = path in {"/healthz", "/v1/openapi.json", "/v1/docs", "/v1/docs/{asset}"}
            if public:
                assert operation["security"] == [], (method, path)
            else:
                assert {"idToken": []} in operation["security"], (method, path)
                assert "401" in operation["responses"], (method, path)


def test_every_operation_names_a_success_response_and_the_error_shape() -> None:
    spec = document()
    error = spec["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    assert spec["components"]["schemas"][error["$ref"].rsplit("/", 1)[-1]]["required"] == ["error"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            statuses = [status for status in operation["responses"] if status[0] == "2"]
            assert statuses, f"{method.upper()} {path} declares no success response"
            assert operation["responses"]["default"] == {"$ref": "#/components/responses/Error"}


@pytest.mark.parametrize(
    ("pattern", "template"),
    [
        ("/v1/documents/<document_id>", "/v1/documents/{document_id}"),
        ("/v1/x/<uuid:id>/y/<int(min=1):n>", "/v1/x/{id}/y/{n}"),
        ("/healthz", "/healthz"),
    ],
)
def test_werkzeug_patterns_become_path_templates(pattern: str, template: str) -> None:
    assert openapi_path(pattern) == template
