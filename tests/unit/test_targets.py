"""Every function target loads through functions-framework, importing only what it uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import functions_framework
import pytest

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


@pytest.mark.parametrize("target", sorted(main.TARGETS))
def test_each_target_is_served_by_functions_framework(target: str) -> None:
    app = functions_framework.create_app(target, str(ROOT / "main.py"))
    assert app is not None


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
