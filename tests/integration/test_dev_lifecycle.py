"""``scripts/ragline dev`` as a process manager runs it: started, signalled, restarted.

Each test starts the real wrapper as a subprocess on a data folder of its own, waits
for the ready message, then stops it the way a terminal (SIGINT), a process manager
(SIGTERM) or a crash (SIGKILL) does, and checks what is left: no process of its tree
(the GCS emulator, the parse workers, the multiprocessing helpers) and no embedded
PostgreSQL (which runs detached, so its id comes from ``postmaster.pid``).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"Ragline local stack on (http://127\.0\.0\.1:\d+)")
# How long a start or a stop may take on a loaded machine before the test gives up
# (a bound on waiting, not a speed requirement).
PATIENCE_S = 240.0


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (to tell it from a later one with its id), or None.

    A zombie counts as gone: it has exited and only waits to be reaped.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def descendants(root: int) -> set[int]:
    """Every process below ``root``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


@dataclass
class Dev:
    """A running ``scripts/ragline dev`` and the processes it started."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    def processes(self, data: Path) -> dict[int, str]:
        """Its tree and its PostgreSQL server, each pid with its start time."""
        pids = descendants(self.process.pid) | {self.process.pid}
        postmaster = (data / "pg" / "postmaster.pid").read_text().split("\n", 1)[0]
        pids.add(int(postmaster))
        started = {pid: process_start(pid) for pid in pids}
        return {pid: start for pid, start in started.items() if start is not None}


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """A data folder; whatever a failed test leaves running on it is stopped afterwards."""
    folder = tmp_path / "data"
    yield folder
    pidfile = folder / "pg" / "postmaster.pid"
    if pidfile.exists():  # a failed test: do not leave its server behind
        pid = int(pidfile.read_text().split("\n", 1)[0])
        if process_start(pid) is not None:
            os.kill(pid, signal.SIGTERM)


def start_dev(data: Path, cwd: Path) -> Dev:
    """Start ``scripts/ragline dev`` on a free port; return once it says it is ready."""
    process = subprocess.Popen(
        [str(REPO_ROOT / "scripts" / "ragline"), "dev", "--data", str(data), "--port", "0"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:  # the stack logs a lot: never let its pipe fill up
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        match = READY.search(line)
        if match:
            # The rest of the ready message follows at once.
            while not seen[-1].startswith("Ctrl-C"):
                next_line = lines.get(timeout=30)
                assert next_line is not None, "".join(seen)
                seen.append(next_line)
            return Dev(process, match.group(1), seen)
    process.kill()
    raise AssertionError("dev never said it was ready:\n" + "".join(seen[-40:]))


def healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/healthz", timeout=30) as response:
        return bool(response.status == 200)


def wait_gone(processes: dict[int, str]) -> dict[int, str]:
    """Wait until none of ``processes`` runs; return those still running at the deadline."""
    deadline = time.monotonic() + PATIENCE_S
    left = dict(processes)
    while left and time.monotonic() < deadline:
        left = {pid: start for pid, start in left.items() if process_start(pid) == start}
        if left:
            time.sleep(0.2)
    return left


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_of_the_stack(
    data: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    dev = start_dev(data, cwd=tmp_path)
    assert healthy(dev.url)
    processes = dev.processes(data)
    # The stack itself, its GCS emulator, its parse workers and PostgreSQL at least.
    assert len(processes) >= 4, processes

    dev.process.send_signal(signum)
    assert dev.process.wait(timeout=PATIENCE_S) == 0
    assert wait_gone(processes) == {}


def test_dev_says_what_to_try_next_with_its_real_port(data: Path, tmp_path: Path) -> None:
    dev = start_dev(data, cwd=tmp_path)
    try:
        message = "".join(dev.lines[-12:])
        assert f"scripts/ragline ingest samples --kb samples --url {dev.url}" in message
        assert f"scripts/ragline status --kb samples --url {dev.url}" in message
        assert 'scripts/ragline ask "' in message
        assert "$(scripts/ragline token --data" in message
        assert f'curl -s -H "$AUTH" {dev.url}/v1/knowledge-bases' in message
    finally:
        dev.process.send_signal(signal.SIGTERM)
        dev.process.wait(timeout=PATIENCE_S)


@pytest.mark.parametrize("database_too", [False, True], ids=["stack", "stack-and-database"])
def test_a_restart_after_sigkill_works_on_the_same_data(
    data: Path, tmp_path: Path, database_too: bool
) -> None:
    first = start_dev(data, cwd=tmp_path)
    left_behind = first.processes(data)
    postmaster = int((data / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
    first.process.kill()
    first.process.wait(timeout=PATIENCE_S)
    if database_too:  # a crash of the machine: postmaster.pid and the rest stay behind
        os.kill(postmaster, signal.SIGKILL)
        assert wait_gone({postmaster: left_behind[postmaster]}) == {}

    second = start_dev(data, cwd=tmp_path)
    assert healthy(second.url)
    running = second.processes(data)
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=PATIENCE_S) == 0
    # The first run's helpers exited on their own; its database was reused (or started
    # afresh after its crash), then stopped.
    assert wait_gone({**left_behind, **running}) == {}
