"""Hosts every function target with functions-framework, exactly as deployed.

Each target gets its own functions-framework app built from ``main.py``; push
deliveries reach them as HTTP requests (through werkzeug's in-process client), so the
framework's own request handling, CloudEvent conversion and error mapping all run.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import functions_framework
from werkzeug.test import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
HTTP_TARGETS = (
    "upload",
    "manage",
    "answer",
    "embed",
    "sweep",
    "deliver_webhook",
    "mcp",
    "sync",
)
EVENT_TARGETS = ("ingest", "parse", "chunk", "index", "dead_letter", "webhooks")


class FunctionsHost:
    """One functions-framework app per target, callable in-process."""

    def __init__(self, project: str) -> None:
        self.project = project
        source = str(REPO_ROOT / "main.py")
        self.apps: dict[str, Any] = {
            target: functions_framework.create_app(target, source)
            for target in (*HTTP_TARGETS, *EVENT_TARGETS)
        }

    def push_target(self, target: str) -> Any:
        """A push target delivering Pub/Sub push bodies to ``target``."""

        def push(body: dict[str, Any], context: dict[str, str]) -> int:
            # functions-framework derives the CloudEvent source from this path.
            path = f"/projects/{self.project}/topics/{context.get('topic', 'unknown')}"
            response = Client(self.apps[target]).post(path, json=body)
            return response.status_code

        return push

    def task_target(self, target: str) -> Any:
        """A push target delivering Cloud Tasks HTTP requests to ``target``."""

        def push(body: dict[str, Any], headers: dict[str, str]) -> int:
            response = Client(self.apps[target]).post("/", json=body, headers=headers)
            return response.status_code

        return push

    def storage_event(self, event_type: str, resource: dict[str, Any]) -> int:
        """Deliver a GCS CloudEvent (binary mode, as Eventarc does) to ``ingest``."""
        headers = {
            "ce-id": str(uuid.uuid4()),
            "ce-specversion": "1.0",
            "ce-type": f"google.cloud.storage.object.v1.{event_type}",
            "ce-source": f"//storage.googleapis.com/projects/_/buckets/{resource['bucket']}",
            "ce-subject": f"objects/{resource['name']}",
            "ce-time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            "Content-Type": "application/json",
        }
        response = Client(self.apps["ingest"]).post("/", data=json.dumps(resource), headers=headers)
        return response.status_code
