"""Route models at work: query parameters validated, responses shaped by their model."""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, Field
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from shared.api.http import Reply, Route, Router, model_response, read_query
from shared.auth import Principal
from shared.runtime import Runtime


class Query(BaseModel):
    limit: int = Field(10, ge=1, le=100)
    tag: list[str] = Field(default_factory=list)


class Item(Reply):
    id: str
    count: int


def _listing(runtime: Runtime, request: Request, principal: Principal) -> Response:
    query = read_query(request, Query)
    return model_response(Item, {"id": ",".join(query.tag), "count": query.limit, "more": True})


def _drifted(runtime: Runtime, request: Request, principal: Principal) -> Response:
    return model_response(Item, {"id": "a", "count": "many"})


def _client() -> Client:
    class Settings:
        cors_origins: list[str] = []

    class FakeRuntime:
        settings = Settings()

    routes = [
        Route("GET", "/items", _listing, public=True, query=Query, responses={200: Item}),
        Route("GET", "/drifted", _drifted, public=True, responses={200: Item}),
    ]
    router = Router(routes, runtime=lambda: cast(Any, FakeRuntime()))

    @Request.application
    def app(request: Request) -> Response:
        return router(request)

    return Client(app)


def test_the_query_model_reads_defaults_repeats_and_empty_values() -> None:
    client = _client()
    assert client.get("/items").json == {"id": "", "count": 10, "more": True}
    assert client.get("/items?limit=&tag=a&tag=b").json == {"id": "a,b", "count": 10, "more": True}
    assert client.get("/items?limit=5&other=x").json == {"id": "", "count": 5, "more": True}


def test_a_bad_query_parameter_is_a_400_invalid_parameter() -> None:
    for query in ("limit=0", "limit=101", "limit=ten"):
        response = _client().get(f"/items?{query}")
        assert response.status_code == 400, query
        assert response.json is not None
        assert response.json["error"]["code"] == "invalid_parameter"
        assert response.json["error"]["message"].startswith("limit: ")


def test_a_response_that_drifted_from_its_model_is_a_500_not_a_client_error() -> None:
    response = _client().get("/drifted")
    assert response.status_code == 500
    assert response.json == {
        "error": {"code": "internal", "message": "internal error; it has been logged"}
    }
