"""A watched drop folder that behaves like the uploads bucket.

``drop/<workspace>/<knowledge-base>/<path...>`` mirrors
``gs://<uploads>/<workspace>/<knowledge-base>/<path...>``: a new file is uploaded (and so
ingested), a changed file uploads a new generation (a new version), a deleted file
deletes the object (and so the document). The bucket's rule decides where a file
belongs: a file outside ``<workspace>/<knowledge-base>/`` or naming a workspace that does
not exist is uploaded and refused by the ingest function, which records why (as for
any object in the bucket). The folder is polled rather than watched through OS events:
it behaves the same on Linux and macOS and a file is only uploaded once its size and
mtime have settled (no half-copied files).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from shared.storage import ObjectStore

log = logging.getLogger(__name__)

_IGNORED_PREFIXES = (".", "~$")
_IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".swp")

Signature = tuple[int, int]  # (size, mtime_ns)


def _ignored(path: Path) -> bool:
    return any(part.startswith(_IGNORED_PREFIXES) for part in path.parts) or path.name.endswith(
        _IGNORED_SUFFIXES
    )


class DropFolder:
    """Mirrors a folder into the uploads bucket."""

    def __init__(
        self, root: Path, bucket: str, objects: ObjectStore, *, interval_s: float = 0.5
    ) -> None:
        self.root = root
        self.bucket = bucket
        self._objects = objects
        self._interval_s = interval_s
        self._synced: dict[str, Signature] = {}
        self._pending: dict[str, Signature] = {}
        self._stop = threading.Event()
        # The background thread and a caller (tests) may sync at the same moment.
        self._sync_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="drop-folder", daemon=True)

    def start(self) -> None:
        """Create the folder, then mirror it until stopped."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop mirroring."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _scan(self) -> dict[str, Signature]:
        found: dict[str, Signature] = {}
        for directory, _dirs, files in os.walk(self.root):
            for filename in files:
                path = Path(directory, filename)
                relative = path.relative_to(self.root)
                if _ignored(relative):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                found[relative.as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return found

    def sync_once(self) -> None:
        """Upload settled new or changed files; delete objects of removed files."""
        with self._sync_lock:
            self._sync()

    def _sync(self) -> None:
        current = self._scan()
        for name, signature in current.items():
            if self._synced.get(name) == signature:
                continue
            if self._pending.get(name) != signature:
                self._pending[name] = signature  # wait one interval for it to settle
                continue
            self._upload(name)
            self._synced[name] = signature
            self._pending.pop(name, None)
        for name in list(self._synced):
            if name not in current:
                self._objects.delete(self.bucket, name)
                del self._synced[name]
                log.info("drop folder: deleted %s", name)

    def _upload(self, name: str) -> None:
        data = (self.root / name).read_bytes()
        existing = self._objects.stat(self.bucket, name)
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if existing is not None and existing.md5_hex == digest:
            return  # already in the bucket (e.g. after a restart): no new generation
        self._objects.upload_bytes(self.bucket, name, data)
        log.info("drop folder: uploaded %s (%d bytes)", name, len(data))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception:
                log.exception("drop folder sync failed")
            self._stop.wait(self._interval_s)
