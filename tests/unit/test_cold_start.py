"""Loading a function target never loads a library that target never uses.

functions-framework imports ``main`` and reads the target's attribute; each case does
exactly that in a fresh interpreter and then looks at ``sys.modules``. Which libraries
each target may use at all is spelled out in ``scripts/bench/cold_start.py``
(``MAY_USE``), the table the cold-start benchmark flags offenders with; this checks
behaviour only (no timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import main
from scripts.bench.cold_start import HEAVY, MAY_USE, NEVER_USES

ROOT = Path(__file__).resolve().parents[2]


def _tracked_after_loading(target: str) -> list[str]:
    """The tracked libraries in ``sys.modules`` after ``import main; main.<target>``."""
    code = (
        "import json, sys\n"
        "import main\n"
        f"main.{target}\n"
        f"print(json.dumps(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_every_target_has_a_declared_set_of_libraries() -> None:
    assert set(MAY_USE) == set(main.TARGETS)
    for target, uses in MAY_USE.items():
        assert uses <= set(HEAVY), f"{target} declares untracked libraries"


def test_no_deployed_target_needs_torch_unless_it_embeds() -> None:
    torch_family = {"torch", "sentence_transformers", "transformers"}
    for target, never in NEVER_USES.items():
        if target not in ("embed", "answer", "mcp"):  # the local MiniLM embedder (queries)
            assert torch_family <= set(never), target


@pytest.mark.parametrize("target", sorted(main.TARGETS))
def test_loading_a_target_leaves_the_libraries_it_never_uses_unloaded(target: str) -> None:
    loaded = _tracked_after_loading(target)
    offenders = sorted(set(loaded) & set(NEVER_USES[target]))
    assert not offenders, f"loading {target!r} imported {offenders}, which it never uses"
