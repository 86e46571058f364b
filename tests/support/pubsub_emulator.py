"""Run the real Google Cloud Pub/Sub emulator for a test module.

``gcloud beta emulators pubsub start`` launches a Java server; it takes a second or
two to listen, so tests share one per module (see :func:`pubsub_emulator`). Without
``gcloud`` (and Java) on PATH the tests that need it are skipped, so a CI machine
without the SDK still passes; where they are installed the tests run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Seconds to wait for the emulator to answer before the fixture fails.
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PubSubEmulator:
    """A running emulator.

    Attributes:
        host: ``host:port`` it listens on (the value of ``PUBSUB_EMULATOR_HOST``).
        project: Project id to use with it (the emulator accepts any).
        startup_s: Seconds it took from launch to ready.
    """

    host: str
    project: str
    startup_s: float


def skip_unless_gcloud() -> str:
    """Return the ``gcloud`` executable, or skip the calling test if it is missing.

    Under CI (``CI`` set) a missing tool fails the test instead: CI machines have the
    Cloud SDK and Java, and a skip there would hide that these tests stopped running.
    """
    missing = pytest.fail if os.environ.get("CI") else pytest.skip
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        missing("gcloud is not on PATH: the Pub/Sub emulator tests need the Cloud SDK")
    if shutil.which("java") is None:
        missing("java is not on PATH: the Pub/Sub emulator needs a Java runtime")
    assert gcloud is not None
    return gcloud


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_pubsub_emulator(project: str = "ragline-test") -> Iterator[PubSubEmulator]:
    """Start the Pub/Sub emulator, point the client libraries at it, stop it after.

    While the context is active ``PUBSUB_EMULATOR_HOST`` and ``PUBSUB_PROJECT_ID``
    are set in ``os.environ`` (clients created inside it use the emulator); the
    previous values are restored afterwards.

    Args:
        project: Project id to export as ``PUBSUB_PROJECT_ID``.

    Yields:
        The running emulator.
    """
    gcloud = skip_unless_gcloud()
    host = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="pubsub-emulator-") as data_dir:
        log_path = Path(data_dir) / "emulator.log"
        started = time.monotonic()
        with log_path.open("wb") as log:
            # A new session makes gcloud the leader of its own process group, so the
            # Java server it forks can be stopped with it (killpg) and never outlives
            # the tests. Prompts are disabled: a test must not hang on stdin.
            process = subprocess.Popen(
                [
                    gcloud,
                    "beta",
                    "emulators",
                    "pubsub",
                    "start",
                    f"--host-port={host}",
                    f"--data-dir={data_dir}",
                    "--quiet",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
            )
        try:
            _wait_until_ready(process, host, log_path)
            emulator = PubSubEmulator(host, project, time.monotonic() - started)
            with _environment(PUBSUB_EMULATOR_HOST=host, PUBSUB_PROJECT_ID=project):
                yield emulator
        finally:
            _stop(process)


def _wait_until_ready(process: subprocess.Popen[bytes], host: str, log_path: Path) -> None:
    """Poll the emulator's HTTP port (it answers ``Ok`` on ``/``) until it is up."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Pub/Sub emulator exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"http://{host}/", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"Pub/Sub emulator not ready after {START_TIMEOUT_S} s:\n{log_path.read_text()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the emulator's whole process group: gcloud and the Java server."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # gcloud may exit before its child; make sure nothing in the group survives.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the context."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """Module-scoped fixture: one emulator shared by a test module's tests.

    Use it by importing it into the test module (or a ``conftest.py``)::

        from tests.support.pubsub_emulator import pubsub_emulator  # noqa: F401
    """
    with run_pubsub_emulator() as emulator:
        yield emulator
