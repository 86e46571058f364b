"""The ``scripts/ragline`` CLI, run as a process against the stack served over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.localstack.stack import LocalStack, free_port
from tests.support.api import Api, owner_token, visible_chunks
from tests.support.stack import served

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = "# Guide\n\n" + "Start the service, then check its health endpoint. " * 40
FAQ = "Frequently asked questions.\n\n" + "Ask the team before changing the schedule. " * 30
SETUP = "# Setup\n\n## Install\n\n" + "Install the package and configure the database. " * 30


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scripts.cli ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "RAGLINE_TOKEN": TOKEN.get("token", ""), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_wrapper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real ``scripts/ragline`` wrapper from ``cwd``, as a user in that folder would."""
    return subprocess.run(
        [str(REPO_ROOT / "scripts" / "ragline"), *args],
        cwd=cwd,
        env={**os.environ, "RAGLINE_TOKEN": TOKEN.get("token", "")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# The local owner's token of the stack the CLI talks to (set by the ``url`` fixture).
TOKEN: dict[str, str] = {}


@pytest.fixture
def url(clean_stack: LocalStack) -> Iterator[str]:
    """The stack's one origin served on a real port while the test runs."""
    TOKEN["token"] = owner_token(clean_stack)
    with served(clean_stack.app) as base_url:
        yield base_url


def make_folder(root: Path, *, bad: bool) -> Path:
    folder = root / "docs"
    (folder / "guides" / "deep").mkdir(parents=True)
    (folder / "guide.md").write_text(GUIDE)
    (folder / "guides" / "faq.txt").write_text(FAQ)
    (folder / "guides" / "deep" / "setup.md").write_text(SETUP)
    (folder / ".hidden.md").write_text("# Hidden\n\nSkipped by the CLI.")
    if bad:
        (folder / "guides" / "broken.bin").write_bytes(b"\x00\x01\x02binary")
    return folder


def summary_lines(stdout: str) -> dict[str, str]:
    """File name -> status, from the summary table."""
    lines: dict[str, str] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "/" in parts[0]:
            lines[Path(parts[0]).name] = parts[1]
    return lines


def test_ingest_a_folder_with_a_bad_file_reports_it_and_exits_1(
    clean_stack: LocalStack, url: str, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, bad=True)
    result = run_cli("ingest", str(folder), "--kb", "cli", "--url", url)

    assert result.returncode == 1, result.stderr
    assert summary_lines(result.stdout) == {
        "guide.md": "ready",
        "faq.txt": "ready",
        "setup.md": "ready",
        "broken.bin": "failed",
    }
    assert "3 of 4 ready, 1 failed" in result.stdout
    assert "Hidden" not in result.stdout and ".hidden.md" not in result.stdout
    broken = next(line for line in result.stdout.splitlines() if "broken.bin" in line)
    assert "binary" in broken, "the failure reason is shown"

    api = Api(clean_stack)
    listed = api.get("/v1/knowledge-bases/cli/documents").json or {}
    statuses = {d["filename"]: d["status"] for d in listed["documents"]}
    assert statuses == {
        "guide.md": "ready",
        "faq.txt": "ready",
        "setup.md": "ready",
        "broken.bin": "failed",
    }


def test_ingest_good_files_exits_0_and_status_reports_them(
    clean_stack: LocalStack, url: str, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, bad=False)
    single = tmp_path / "extra.txt"
    single.write_text("An extra note given as a file argument.")
    result = run_cli("ingest", str(folder), str(single), "--kb", "cli", "--url", url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_lines(result.stdout) == {
        "guide.md": "ready",
        "faq.txt": "ready",
        "setup.md": "ready",
        "extra.txt": "ready",
    }
    assert "4 of 4 ready, 0 failed" in result.stdout

    as_json = run_cli("status", "--kb", "cli", "--json", "--url", url)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert len(report) == 1
    assert report[0]["knowledge_base"]["name"] == "cli"
    documents = {d["filename"]: d for d in report[0]["documents"]}
    assert set(documents) == {"guide.md", "faq.txt", "setup.md", "extra.txt"}
    assert {d["status"] for d in documents.values()} == {"ready"}
    guide = documents["guide.md"]
    assert guide["chunk_count"] == len(visible_chunks(clean_stack, guide["id"])) >= 1

    text = run_cli("status", "--url", url)
    assert text.returncode == 0, text.stderr
    assert "cli (" in text.stdout
    assert "4 documents; 4 ready" in text.stdout
    for name in ("guide.md", "faq.txt", "setup.md", "extra.txt"):
        assert name in text.stdout


def test_ingest_again_makes_no_new_versions(
    clean_stack: LocalStack, url: str, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, bad=False)
    assert run_cli("ingest", str(folder), "--kb", "cli", "--url", url).returncode == 0
    again = run_cli("ingest", str(folder), "--kb", "cli", "--url", url)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 of 3 ready" in again.stdout
    api = Api(clean_stack)
    for document in (api.get("/v1/knowledge-bases/cli/documents").json or {})["documents"]:
        assert len(api.document(document["id"])["versions"]) == 1


def test_status_of_an_unknown_knowledge_base_fails_clearly(
    clean_stack: LocalStack, url: str
) -> None:
    result = run_cli("status", "--kb", "nope", "--url", url)
    assert result.returncode != 0
    assert "no knowledge base named 'nope'" in result.stderr
    assert result.stdout == ""


def test_cli_without_a_server_says_it_cannot_reach_it(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nText.")
    url = f"http://127.0.0.1:{free_port()}"
    for args in (
        ("status", "--url", url),
        ("ingest", str(tmp_path), "--kb", "cli", "--url", url),
    ):
        result = run_cli(*args)
        assert result.returncode != 0
        assert f"cannot reach {url}" in result.stderr
        assert "Traceback" not in result.stderr


def test_ingest_of_a_missing_path_fails(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    result = run_cli("ingest", str(missing), "--kb", "cli", "--url", "http://127.0.0.1:9")
    assert result.returncode != 0
    assert f"no such file or folder: {missing}" in result.stderr


def test_ingest_of_an_empty_folder_fails(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("ingest", str(tmp_path / "empty"), "--kb", "cli", "--url", "http://x")
    assert result.returncode != 0
    assert "nothing to ingest" in result.stderr


def test_migrate_reports_the_schema_up_to_date(clean_stack: LocalStack) -> None:
    result = run_cli("migrate", env={"RAGLINE_DATABASE_URL": os.environ["RAGLINE_DATABASE_URL"]})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "schema is up to date"


def test_ask_streams_the_answer_then_lists_its_sources(clean_stack: LocalStack, url: str) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("guides")
    api.ingest(kb["id"], "setup.md", SETUP.encode())
    api.ingest(kb["id"], "faq.txt", FAQ.encode())

    streamed = run_cli("ask", "How do I install the package?", "--kb", "guides", "--url", url)
    assert streamed.returncode == 0, streamed.stderr
    answer, _, sources = streamed.stdout.partition("\nSources:\n")
    assert "Install the package and configure the database" in answer
    assert "[1] setup.md" in sources
    assert "session " in streamed.stderr

    as_json = run_cli(
        "ask", "How do I install the package?", "--kb", "guides", "--url", url, "--json"
    )
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["citations"][0]["filename"] == "setup.md"
    assert body["answer"].strip() == answer.strip()


def test_ask_with_bad_input_fails_clearly(clean_stack: LocalStack, url: str) -> None:
    Api(clean_stack).create_kb("guides")
    unknown = run_cli("ask", "anything?", "--kb", "nope", "--url", url)
    assert unknown.returncode != 0
    assert "no knowledge base named 'nope'" in unknown.stderr
    empty = run_cli("ask", "   ", "--kb", "guides", "--url", url)
    assert empty.returncode == 1
    assert "invalid_question: question must not be empty" in empty.stderr


def test_ingest_reads_relative_paths_from_the_folder_it_runs_in(
    clean_stack: LocalStack, url: str, tmp_path: Path
) -> None:
    make_folder(tmp_path, bad=False)
    (tmp_path / "docs" / ".git").mkdir()
    (tmp_path / "docs" / ".git" / "config.md").write_text("# Hidden folder\n\nSkipped.")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # ``..`` in the path given hides nothing; the wrapper reads it from the caller's folder.
    result = run_wrapper("ingest", "../docs", "--kb", "cli", "--url", url, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_lines(result.stdout) == {
        "guide.md": "ready",
        "faq.txt": "ready",
        "setup.md": "ready",
    }
    assert "../docs/guides/faq.txt" in result.stdout, "paths are shown as they were given"
    assert "config.md" not in result.stdout and ".hidden.md" not in result.stdout

    nested = run_wrapper("ingest", "guides", "--kb", "cli", "--url", url, cwd=tmp_path / "docs")
    assert nested.returncode == 0, nested.stdout + nested.stderr
    assert "2 of 2 ready" in nested.stdout

    single = run_wrapper("ingest", "./docs/guide.md", "--kb", "cli", "--url", url, cwd=tmp_path)
    assert single.returncode == 0, single.stdout + single.stderr
    assert "1 of 1 ready" in single.stdout


def test_a_missing_relative_path_is_reported_as_given(tmp_path: Path) -> None:
    result = run_wrapper(
        "ingest", "../nowhere", "--kb", "cli", "--url", "http://127.0.0.1:9", cwd=tmp_path
    )
    assert result.returncode != 0
    assert "no such file or folder: ../nowhere" in result.stderr


def test_token_reads_a_relative_data_folder_from_the_folder_it_runs_in(tmp_path: Path) -> None:
    result = run_wrapper("token", "--data", "stack-data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2, "a JWT"
    assert (tmp_path / "stack-data" / "issuer").is_dir()
