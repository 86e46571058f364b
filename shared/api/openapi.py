"""The OpenAPI 3.1 document of the API, generated from its routes' pydantic models.

Nothing here describes an endpoint by hand: each :class:`~shared.api.http.Route` names
the models its handler validates (``body``, ``query``) and sends (``responses``), and
pydantic turns them into JSON Schema 2020-12, the dialect OpenAPI 3.1 uses natively.
The error shape, the security schemes and the workspace header are the API's own
(:mod:`shared.api.http`, :mod:`shared.api.authn`), stated once here for every route.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.api.authn import WORKSPACE_HEADER
from shared.api.http import Content, ErrorBody, Route
from shared.identity.tickets import TICKET_PARAM, is_stream_path

TITLE = "Ragline API"
VERSION = "1"
REF_TEMPLATE = "#/components/schemas/{model}"
# Werkzeug's <name>, <converter:name> and <converter(args):name> placeholders.
PLACEHOLDER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "default": {"type": "string", "minLength": 1},
    "string": {"type": "string", "minLength": 1},
    "path": {"type": "string", "minLength": 1},
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer", "minimum": 0},
}
# Statuses any authenticated route may answer, besides its own (Route.errors).
AUTHENTICATED_ERRORS = (400, 401, 403, 404, 429, 500, 503)
PUBLIC_ERRORS = (400, 500)
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "idToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An ID token of the configured issuer (Identity Platform, IAP).",
    },
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "rlk_<id>_<secret>",
        "description": "A workspace API key, sent as the bearer token; acts with its role.",
    },
    "streamTicket": {
        "type": "apiKey",
        "in": "query",
        "name": TICKET_PARAM,
        "description": "A single-use ticket from POST /v1/stream-tickets (EventSource).",
    },
}
# A model and the direction it is used in (validating input, serializing output).
SchemaKey = tuple[Any, JsonSchemaMode]
HEADER_SECURITY: list[dict[str, list[str]]] = [{"idToken": []}, {"apiKey": []}]


def openapi_path(pattern: str) -> str:
    """A werkzeug path pattern as an OpenAPI path template (``<kb_id>`` -> ``{kb_id}``)."""
    return PLACEHOLDER.sub(lambda match: "{" + match["name"] + "}", pattern)


def _path_parameters(pattern: str) -> list[dict[str, Any]]:
    return [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": dict(CONVERTER_SCHEMAS.get(match["converter"] or "default", {})),
        }
        for match in PLACEHOLDER.finditer(pattern)
    ]


def unique_routes(routes: Iterable[Route]) -> list[Route]:
    """The routes with one per method and path (a path two functions share counts once)."""
    seen: dict[tuple[str, str], Route] = {}
    for route in routes:
        seen.setdefault((route.method, route.path), route)
    return list(seen.values())


def _models(routes: Sequence[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorBody, "serialization"): None
    }
    for route in routes:
        for model in (route.body, route.query, route.headers):
            if model is not None:
                wanted[(model, "validation")] = None
        for body in [*route.responses.values(), route.stream]:
            if isinstance(body, type):
                wanted[(body, "serialization")] = None
            elif isinstance(body, Content) and body.item is not None:
                wanted[(body.item, "serialization")] = None
    return list(wanted)


def _parameters(schema: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The parameters of a query or headers model (``where``: ``query`` or ``header``)."""
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": name in required,
            "schema": _parameter_schema(prop),
        }
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


def _parameter_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema: absent is how a parameter is null, so no null branch."""
    schema = {key: value for key, value in prop.items() if key not in ("description", "title")}
    options = schema.pop("anyOf", None)
    if options is not None:
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _content(body: Content, schemas: dict[SchemaKey, dict[str, Any]]) -> dict[str, Any]:
    """The media types of a body that is no JSON model (a stream's: each item's schema)."""
    schema: dict[str, Any] = {"type": "string"}
    if body.item is not None:
        schema = schemas[(body.item, "serialization")]
    elif body.binary:
        schema["format"] = "binary"
    return {media_type: {"schema": schema} for media_type in body.media_types}


def _summary(route: Route) -> str:
    if route.summary:
        return route.summary
    doc = (route.handler.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else f"{route.method} {route.path}"


def _tags(route: Route) -> list[str]:
    if route.tags:
        return list(route.tags)
    return [route.handler.__module__.rsplit(".", 1)[-1]]


def _security(route: Route) -> list[dict[str, list[str]]]:
    if route.public:
        return []
    security = list(HEADER_SECURITY)
    if is_stream_path(_example_path(route.path)):
        security.append({"streamTicket": []})
    return security


def _example_path(pattern: str) -> str:
    return PLACEHOLDER.sub("00000000-0000-4000-8000-000000000000", pattern)


def _operation_ids(routes: Sequence[Route]) -> dict[int, str]:
    """Each route's operationId: its own, else its handler's name (module-qualified if shared)."""
    names = [route.operation_id or route.handler.__name__ for route in routes]
    return {
        index: (
            name
            if names.count(name) == 1
            else f"{route.handler.__module__.rsplit('.', 1)[-1]}_{name}"
        )
        for index, (route, name) in enumerate(zip(routes, names, strict=True))
    }


def _operation(
    route: Route,
    operation_id: str,
    schemas: dict[SchemaKey, dict[str, Any]],
) -> dict[str, Any]:
    doc = (route.handler.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": _summary(route),
        "tags": _tags(route),
        "security": _security(route),
    }
    if doc and doc != operation["summary"]:
        operation["description"] = doc
    parameters = _path_parameters(route.path)
    if route.query is not None:
        parameters += _parameters(schemas[(route.query, "validation")], "query")
    if route.headers is not None:
        parameters += _parameters(schemas[(route.headers, "validation")], "header")
    if not route.public:
        parameters.append(
            {
                "name": WORKSPACE_HEADER,
                "in": "header",
                "required": False,
                "description": "The workspace the request acts in (default: the caller's).",
                "schema": {"type": "string"},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {route.body_media_type: {"schema": schemas[(route.body, "validation")]}},
        }
    responses: dict[str, Any] = {}
    for status, body in sorted(route.responses.items()):
        response: dict[str, Any] = {"description": _status_text(status)}
        if isinstance(body, Content):
            response["description"] = body.description
            response["content"] = _content(body, schemas)
        elif body is not None:
            response["content"] = {"application/json": {"schema": schemas[(body, "serialization")]}}
            if route.stream is not None:
                response["content"].update(_content(route.stream, schemas))
        responses[str(status)] = response
    errors = set(PUBLIC_ERRORS if route.public else AUTHENTICATED_ERRORS) | set(route.errors)
    for status in sorted(errors):
        responses[str(status)] = {"$ref": "#/components/responses/Error"}
    responses["default"] = {"$ref": "#/components/responses/Error"}
    operation["responses"] = responses
    return operation


def _status_text(status: int) -> str:
    return {200: "OK", 201: "Created", 202: "Accepted", 204: "No content"}.get(status, "OK")


def openapi_document(routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``.

    Args:
        routes: Every route the API serves (duplicates by method and path count once).

    Returns:
        The document, a JSON-ready dict.
    """
    served = unique_routes(routes)
    refs, definitions = models_json_schema(_models(served), ref_template=REF_TEMPLATE)
    components = dict(definitions.get("$defs", {}))
    # A query or headers model becomes parameters, not a schema of its own.
    schemas: dict[SchemaKey, dict[str, Any]] = dict(refs)
    parameter_models: set[SchemaKey] = {
        (model, "validation")
        for route in served
        for model in (route.query, route.headers)
        if model is not None
    }
    for key in parameter_models:
        schemas[key] = _inline(refs[key], components)
    for key in parameter_models:
        components.pop(refs[key].get("$ref", "").rsplit("/", 1)[-1], None)
    ids = _operation_ids(served)
    paths: dict[str, dict[str, Any]] = {}
    for index, route in enumerate(served):
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(
            route, ids[index], schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": (
                "Retrieval-augmented answers over your documents. Errors are always "
                '`{"error": {"code", "message"}}`.'
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "responses": {
                "Error": {
                    "description": "An error: a stable code and a message.",
                    "content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}},
                }
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _inline(ref: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The schema a ``$ref`` names, from the components."""
    if "$ref" not in ref:
        return ref
    return dict(components[ref["$ref"].rsplit("/", 1)[-1]])
