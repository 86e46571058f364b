"""Helpers that drive the local stack through its HTTP API, as a frontend would."""

from __future__ import annotations

import io
import json
from typing import Any

from werkzeug.test import Client, TestResponse

from scripts.localstack.stack import LocalStack


def token_for(
    stack: LocalStack,
    subject: str,
    *,
    email: str | None = None,
    workspace: str | None = None,
    role: str | None = None,
) -> str:
    """A bearer token of the stack's local issuer (``ragline_*`` claims if given)."""
    return stack.issuer.mint(
        subject, email or f"{subject}@localhost", workspace=workspace, role=role
    )


def owner_token(stack: LocalStack) -> str:
    """A token of the local owner of the default workspace (what ``ragline token`` prints)."""
    return stack.owner_token()


class Api:
    """The one-origin HTTP API of a running local stack, in-process.

    Every request carries ``token`` (default: the local owner's) unless it is ``""``;
    ``workspace`` is sent as the workspace the requests act in.
    """

    def __init__(
        self, stack: LocalStack, token: str | None = None, *, workspace: str | None = None
    ) -> None:
        self.stack = stack
        self.client = Client(stack.app)
        self.token = owner_token(stack) if token is None else token
        self.headers: dict[str, str] = {}
        if self.token:
            self.headers["Authorization"] = f"Bearer {self.token}"
        if workspace:
            self.headers["X-Ragline-Workspace"] = workspace

    def _headers(self, kwargs: dict[str, Any]) -> dict[str, str]:
        return {**self.headers, **dict(kwargs.pop("headers", None) or {})}

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        """GET ``path``."""
        return self.client.get(path, headers=self._headers(kwargs), **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        """POST ``path``."""
        return self.client.post(path, headers=self._headers(kwargs), **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        """PATCH ``path``."""
        return self.client.patch(path, headers=self._headers(kwargs), **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        """PUT ``path``."""
        return self.client.put(path, headers=self._headers(kwargs), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        """DELETE ``path``."""
        return self.client.delete(path, headers=self._headers(kwargs), **kwargs)

    def create_kb(self, name: str, **settings: Any) -> dict[str, Any]:
        """Create a knowledge base and return it."""
        response = self.post("/v1/knowledge-bases", json={"name": name, **settings})
        assert response.status_code == 201, response.get_data(as_text=True)
        return dict(response.json or {})

    def upload(
        self, kb_id: str, filename: str, data: bytes, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Upload a file as multipart and return the 202 body."""
        form: dict[str, Any] = {"file": (io.BytesIO(data), filename)}
        if metadata is not None:
            form["metadata"] = json.dumps(metadata)
        response = self.post(f"/v1/knowledge-bases/{kb_id}/documents", data=form)
        assert response.status_code == 202, response.get_data(as_text=True)
        return dict(response.json or {})

    def document(self, document_id: str) -> dict[str, Any]:
        """The document's detail."""
        response = self.get(f"/v1/documents/{document_id}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return dict(response.json or {})

    def ingest(self, kb_id: str, filename: str, data: bytes) -> dict[str, Any]:
        """Upload a file, wait for the pipeline to settle, return the document."""
        accepted = self.upload(kb_id, filename, data)
        self.stack.wait_idle(180)
        return self.document(accepted["document_id"])


def visible_chunks(stack: LocalStack, document_id: str) -> list[tuple[Any, ...]]:
    """The chunks readers can see: the active version's, in order."""
    return stack.database.run(
        "SELECT c.ordinal, c.text, c.page_start, c.page_end, c.char_start, c.char_end,"
        " c.heading_path, c.embedding::text FROM chunks c JOIN documents d"
        " ON d.active_version_id = c.version_id WHERE d.id = CAST(:d AS uuid) ORDER BY c.ordinal",
        d=document_id,
    )


def all_chunks(stack: LocalStack, document_id: str) -> list[tuple[Any, ...]]:
    """Every chunk row of the document, whatever its version."""
    return stack.database.run(
        "SELECT version_id::text, ordinal FROM chunks WHERE document_id = CAST(:d AS uuid)"
        " ORDER BY version_id, ordinal",
        d=document_id,
    )


def body_of(response: TestResponse) -> Any:
    """The response's JSON body (typed Any, so tests can index it)."""
    return response.json
