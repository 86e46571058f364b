"""Parse PDFs in worker processes, for the local stack, which runs several parses at once.

PDFium is not thread-safe, so within one process every PDF parse holds a process-wide
lock (:data:`shared.parsing.pdf._PDFIUM_LOCK`) and parses run one at a time whatever
the number of threads. A deployed parse function runs one request per instance and
scales out by instances, so it never notices. The local stack, where every function
shares one process, does: it gives its :class:`~shared.runtime.Runtime` a
:class:`WorkerPoolParser` as the document parser, which hands each PDF to a pool of
worker processes (each with its own PDFium), as separate instances give production.
The code that parses is the same (:func:`shared.parsing.parse_document`); the parsed
document crosses back as its JSON. Images go to the workers too: OCR is the heaviest
parse there is, and its engine then loads in the workers, not in the stack's process.

A worker that dies (PDFium crashing on a hostile file) takes only the parses it was
running down: the pool is replaced and they fail with a
:class:`~shared.errors.TransientError`, so the pipeline retries them and, after the last
attempt, fails the version; a parse that had not started yet runs on the new pool.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from scripts.localstack.lifetime import exit_with_parent
from shared.config import ParseLimits
from shared.errors import TransientError
from shared.models import ParsedDocument
from shared.parsing import IMAGE_TYPES, PDF, parse_document, sniff

if TYPE_CHECKING:  # the pool's modules load only when workers are asked for
    from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)

# What the workers parse: PDFs (PDFium's lock) and images (OCR).
_IN_WORKERS = frozenset({PDF, *IMAGE_TYPES})


class WorkerPoolParser:
    """A document parser that parses PDFs and images in ``workers`` processes, the rest here.

    Called like :func:`shared.parsing.parse_document`. The workers start here
    (``spawn``: no threads or locks are inherited), so the first parse does not pay
    for their start; with 0 workers every parse runs in the calling process.
    """

    def __init__(self, workers: int) -> None:
        self._lock = threading.Lock()
        self._workers = max(0, workers)
        self._pool: ProcessPoolExecutor | None = _start(workers) if workers > 0 else None

    @property
    def workers(self) -> int:
        """How many worker processes parse PDFs (0: parses run in the calling process)."""
        return self._workers

    def __call__(
        self, data: bytes, *, filename: str | None = None, limits: ParseLimits | None = None
    ) -> ParsedDocument:
        """Parse ``data`` as :func:`shared.parsing.parse_document` does."""
        if data and not data.isspace() and sniff(data, filename).content_type in _IN_WORKERS:
            parsed = self._parse_elsewhere(data, filename, limits)
            if parsed is not None:
                return parsed
        return parse_document(data, filename=filename, limits=limits)

    def close(self) -> None:
        """Shut the pool down, waiting for running parses to finish."""
        with self._lock:
            pool, self._pool, self._workers = self._pool, None, 0
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _parse_elsewhere(
        self, data: bytes, filename: str | None, limits: ParseLimits | None
    ) -> ParsedDocument | None:
        """Parse a PDF in a worker process; None when no pool is in use.

        Raises:
            PermanentError: Whatever the parse raises (bad, encrypted, too large...).
            TransientError: The worker process died; the pool has been replaced.
        """
        from concurrent.futures.process import BrokenProcessPool

        with self._lock:
            pool = self._pool
        if pool is None:
            return None
        try:
            future = pool.submit(_parse_to_json, data, filename, limits)
        except BrokenProcessPool:  # a worker died before this parse: it can start afresh
            pool = self._replace(pool)
            if pool is None:
                return None
            future = pool.submit(_parse_to_json, data, filename, limits)
        except RuntimeError:  # the pool was shut down meanwhile: parse here instead
            return None
        try:
            payload = future.result()
        except BrokenProcessPool as error:
            self._replace(pool)
            raise TransientError("the PDF parser's worker process died; retrying") from error
        return ParsedDocument.model_validate_json(payload)

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor | None:
        """Replace a broken pool (once, however many parses notice); return the current one."""
        with self._lock:
            if self._pool is broken and self._workers:
                log.warning("a PDF parser worker process died; starting new workers")
                self._pool = _start(self._workers)
                broken.shutdown(wait=False, cancel_futures=True)
            return self._pool


def _start(workers: int) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent
    )
    # Start every worker now (each imports the parser once), not on the first parses.
    for future in [pool.submit(_warm) for _ in range(workers)]:
        future.result()
    return pool


def _warm() -> None:
    import shared.parsing.pdf  # noqa: F401  (pypdfium2 and the parser, loaded once)


def _parse_to_json(data: bytes, filename: str | None, limits: ParseLimits | None) -> str:
    """Runs in a worker: the same parse as in-process, returned as JSON."""
    return parse_document(data, filename=filename, limits=limits).model_dump_json()
