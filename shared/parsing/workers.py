"""Parse PDFs in worker processes, for hosts that run several parses at once.

PDFium is not thread-safe, so within one process every PDF parse holds a process-wide
lock (:data:`shared.parsing.pdf._PDFIUM_LOCK`) and parses run one at a time whatever
the number of threads. A deployed parse function runs one request per instance and
scales out by instances, so it never notices. A host that runs many parses on threads
of one process does: the local stack, where every function shares one process. Such a
host calls :func:`use_worker_processes` once, and :func:`shared.parsing.parse_document`
then hands each PDF to a pool of worker processes (each with its own PDFium), which is
what separate instances give production. The code that parses is the same; the parsed
document crosses back as its JSON.

A worker that dies (PDFium crashing on a hostile file) takes only the parses it was
running down: the pool is replaced and they fail with a
:class:`~shared.errors.TransientError`, so the pipeline retries them and, after the last
attempt, fails the version; a parse that had not started yet runs on the new pool.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from shared.errors import TransientError

if TYPE_CHECKING:  # the pool's modules load only in a host that asks for workers
    from concurrent.futures import ProcessPoolExecutor

    from shared.config import ParseLimits
    from shared.models import ParsedDocument

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_workers = 0


def use_worker_processes(workers: int) -> None:
    """Parse PDFs in ``workers`` worker processes from now on (0: in this process).

    The workers are started here (``spawn``: no threads or locks are inherited), so
    the first parse does not pay for their start. Calling it again replaces the pool;
    0 shuts it down and waits for running parses to finish.
    """
    global _pool, _workers
    with _lock:
        previous, _pool, _workers = _pool, None, 0
        if workers > 0:
            _pool, _workers = _start(workers), workers
    if previous is not None:
        previous.shutdown(wait=True, cancel_futures=True)


def worker_processes() -> int:
    """How many worker processes parse PDFs (0: parses run in the calling process)."""
    return _workers


def _start(workers: int) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_interrupts
    )
    # Start every worker now (each imports the parser once), not on the first parses.
    for future in [pool.submit(_warm) for _ in range(workers)]:
        future.result()
    return pool


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole process group: the host stops its workers itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm() -> None:
    import shared.parsing.pdf  # noqa: F401  (pypdfium2 and the parser, loaded once)


def parse_pdf_elsewhere(
    data: bytes, filename: str | None, limits: ParseLimits
) -> ParsedDocument | None:
    """Parse a PDF in a worker process; None when no pool is in use.

    Raises:
        PermanentError: Whatever the parse raises (bad, encrypted, too large...).
        TransientError: The worker process died; the pool has been replaced.
    """
    with _lock:
        pool = _pool
    if pool is None:
        return None
    from concurrent.futures.process import BrokenProcessPool

    from shared.models import ParsedDocument

    try:
        future = pool.submit(_parse_to_json, data, filename, limits)
    except BrokenProcessPool:  # a worker died before this parse: it can start afresh
        pool = _replace(pool)
        if pool is None:
            return None
        future = pool.submit(_parse_to_json, data, filename, limits)
    except RuntimeError:  # the pool was shut down meanwhile: parse here instead
        return None
    try:
        payload = future.result()
    except BrokenProcessPool as error:
        _replace(pool)
        raise TransientError("the PDF parser's worker process died; retrying") from error
    return ParsedDocument.model_validate_json(payload)


def _replace(broken: ProcessPoolExecutor) -> ProcessPoolExecutor | None:
    """Replace a broken pool (once, however many parses notice); return the current one."""
    global _pool
    with _lock:
        if _pool is broken and _workers:
            log.warning("a PDF parser worker process died; starting new workers")
            _pool = _start(_workers)
            broken.shutdown(wait=False, cancel_futures=True)
        return _pool


def _parse_to_json(data: bytes, filename: str | None, limits: ParseLimits) -> str:
    """Runs in a worker: the same parse as in-process, returned as JSON."""
    from shared.parsing import parse_document

    return parse_document(data, filename=filename, limits=limits).model_dump_json()
