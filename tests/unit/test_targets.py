"""Every function target loads through functions-framework, importing only what it uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import functions_framework
import pytest
from functions_framework import _function_registry

import main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "torch",
    "sentence_transformers",
    "openai",
    "pypdfium2",
    "docx",
    "selectolax",
    "tokenizers",
)

# The heavy libraries each target may import when it loads (others are loaded lazily
# inside the step that needs them, or never).
ALLOWED_AT_LOAD: dict[str, set[str]] = {target: set() for target in main.TARGETS}


# How each target is triggered: HTTP (requests, Cloud Tasks, Cloud Scheduler) or
# CloudEvents (Eventarc for GCS, Pub/Sub push). Terraform deploys them the same way.
HTTP_TARGETS = {
    "upload",
    "manage",
    "answer",
    "embed",
    "sweep",
    "deliver_webhook",
    "mcp",
    "sync",
}
EVENT_TARGETS = {"ingest", "parse", "chunk", "index", "dead_letter", "webhooks"}


def test_every_target_has_a_trigger_kind() -> None:
    assert set(main.TARGETS) == HTTP_TARGETS | EVENT_TARGETS


@pytest.mark.parametrize("target", sorted(main.TARGETS))
def test_each_target_is_served_by_functions_framework(target: str) -> None:
    app = functions_framework.create_app(target, str(ROOT / "main.py"))
    # The target registered itself with the decorator of its trigger kind, and the app
    # serves it at the root path functions-framework routes every request to.
    expected = "http" if target in HTTP_TARGETS else "cloudevent"
    assert _function_registry.REGISTRY_MAP.get(target) == expected
    assert any(rule.rule == "/" for rule in app.url_map.iter_rules())
    if target in EVENT_TARGETS:
        # Not a CloudEvent (no ce-* headers, not a push body): the framework refuses it
        # before the handler runs, so nothing of Ragline's is touched.
        response = app.test_client().post("/", data="not an event")
        assert response.status_code in (400, 415)


def _loaded_modules(target: str) -> set[str]:
    code = (
        f"import json, sys; import main; getattr(main, {target!r});"
        " print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize("target", sorted(main.TARGETS))
def test_a_target_imports_no_other_target_and_no_heavy_library(target: str) -> None:
    modules = _loaded_modules(target)
    own = main.TARGETS[target]
    others = {module for name, module in main.TARGETS.items() if name != target}
    assert own in modules
    assert not modules & others, f"{target} imported {modules & others}"
    heavy = {name for name in HEAVY if name in modules}
    assert heavy <= ALLOWED_AT_LOAD[target], f"{target} imported {heavy} at load"


def test_unknown_target_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        main.no_such_target  # noqa: B018
