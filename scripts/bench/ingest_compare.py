"""Ingestion before and after a change, in the same run: each checkout's own local stack.

``python -m scripts.bench.ingest_compare REF [--rounds 3] [--corpus DIR]`` checks ``REF``
out into a temporary git worktree and, in alternating rounds (the side going first
taking turns), runs each side's own ``scripts.cli dev`` on a fresh data folder and its
own ``scripts.cli ingest`` of the corpus, timing from the command's start to every file
``ready``. Nothing of either side is imported here: only the command line both versions
share, so a ref from before any refactoring is measured by its own code. The embedder is
the stack's default (hashing), so the figure is the pipeline's own cost.

It prints both sides' medians and the after/before ratio, and writes
``.bench/ingest_compare/<ref>.{json,md}``; the report in ``docs/`` is left alone (quote
the figures where they are used).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from scripts.bench.common import (
    CORPUS,
    REPO,
    cache_dir,
    environment,
    median,
    now,
    ref_worktree,
)

READY_TIMEOUT_S = 180.0


def free_port() -> int:
    """A TCP port on the loopback interface that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until ``url``/healthz answers 200 (the stack is up) or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited with {process.returncode} before it was up")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the stack at {url} was not up within {timeout_s:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a stack started in its own process group, children included."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # Whatever ignored SIGTERM (a side whose stack does not forward it).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def ingest_once(checkout: Path, corpus: Path, scratch: Path) -> dict[str, Any]:
    """Start ``checkout``'s stack on a fresh data folder, ingest ``corpus``, time it."""
    data = Path(tempfile.mkdtemp(prefix="data-", dir=scratch))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RAGLINE_DATA": str(data)}
    env.pop("OPENAI_API_KEY", None)
    log = (data / "stack.log").open("wb")
    stack = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "dev", "--data", str(data), "--port", str(port)],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(url, stack, READY_TIMEOUT_S)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scripts.cli", "ingest", *map(str, pdfs(corpus)),
             "--kb", "bench", "--url", url],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        stop(stack)
        log.close()
    summary = [line for line in done.stdout.splitlines() if " ready, " in line]
    if done.returncode != 0 or not summary:
        raise RuntimeError(f"ingest failed ({done.returncode}): {done.stdout[-2000:]}")
    ready = int(summary[-1].split()[0])
    return {"seconds": seconds, "ready": ready, "summary": summary[-1].strip()}


def pdfs(corpus: Path) -> list[Path]:
    """The corpus's PDFs (what both sides ingest)."""
    return sorted(corpus.glob("*.pdf"))


def corpus_pages(corpus: Path) -> int:
    """The corpus's PDF pages (both sides parse the same files)."""
    import pypdfium2 as pdfium

    total = 0
    for pdf in pdfs(corpus):
        document = pdfium.PdfDocument(pdf)
        total += len(document)
        document.close()
    return total


def compare(ref: str, corpus: Path, rounds: int) -> dict[str, Any]:
    """Alternating rounds of both sides; each side's seconds per round."""
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    with ref_worktree(ref) as checkout, tempfile.TemporaryDirectory() as scratch:
        roots = {"before": checkout, "after": REPO}
        for index in range(rounds):
            order = ["before", "after"] if index % 2 == 0 else ["after", "before"]
            for side in order:
                result = ingest_once(roots[side], corpus, Path(scratch))
                seconds[side].append(result["seconds"])
                print(
                    f"round {index + 1}/{rounds} {side}: {result['seconds']:.1f} s"
                    f" ({result['summary']})",
                    flush=True,
                )
    return seconds


def markdown(ref: str, results: dict[str, Any]) -> str:
    """The comparison as a small Markdown table."""
    before, after = results["before"], results["after"]
    return "\n".join(
        [
            f"Ingestion of {results['files']} PDFs ({results['pages']} pages), hashing "
            f"embedder, each side its own local stack and CLI; {results['rounds']} "
            f"alternating rounds, {results['date']}, load average {results['load']}.",
            "",
            "| side | median s to all ready | pages/s | rounds (s) |",
            "|---|---|---|---|",
            f"| before (`{ref}`) | {before['median_s']:.1f} | {before['pages_per_s']:.1f} "
            f"| {', '.join(f'{s:.1f}' for s in before['seconds'])} |",
            f"| after (working tree) | {after['median_s']:.1f} | {after['pages_per_s']:.1f} "
            f"| {', '.join(f'{s:.1f}' for s in after['seconds'])} |",
            "",
            f"After/before ratio of the medians: **{results['ratio']:.3f}**; median of the "
            f"rounds' own ratios: **{results['paired_ratio']:.3f}** (below 1: faster).",
        ]
    )


def main() -> None:
    """Run the comparison and write ``.bench/ingest_compare/<ref>.{json,md}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=3, help="ingestions per side")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a folder of PDFs")
    args = parser.parse_args()
    files = pdfs(args.corpus)
    if not files:
        raise SystemExit(f"no PDFs in {args.corpus}")
    pages = corpus_pages(args.corpus)
    date = now()
    seconds = compare(args.ref, args.corpus, args.rounds)
    sides = {
        side: {
            "seconds": values,
            "median_s": median(values),
            "pages_per_s": pages / median(values),
        }
        for side, values in seconds.items()
    }
    results: dict[str, Any] = {
        **sides,
        "ratio": sides["after"]["median_s"] / sides["before"]["median_s"],
        # Each round's two sides ran back to back under the same load: their ratio is
        # the steadier figure on a shared machine.
        "paired_ratio": median(
            [a / b for a, b in zip(seconds["after"], seconds["before"], strict=True)]
        ),
        "files": len(files),
        "pages": pages,
        "rounds": args.rounds,
        "date": date,
        "load": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "environment": environment(),
    }
    text = markdown(args.ref, results)
    out = cache_dir("ingest_compare") / args.ref.replace("/", "_")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
