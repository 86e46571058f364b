"""The local stack's parser: PDFs in worker processes, the same result as in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.localstack.parse_workers import WorkerPoolParser
from shared.errors import EncryptedContentError
from shared.parsing import parse_document
from tests.unit.parsing_fixtures import encrypted_pdf, limits, sample_pdf


@pytest.fixture(scope="module")
def pooled() -> Iterator[WorkerPoolParser]:
    parser = WorkerPoolParser(1)
    yield parser
    parser.close()


def test_a_pdf_parsed_in_a_worker_equals_the_in_process_parse(pooled: WorkerPoolParser) -> None:
    data = sample_pdf()
    assert pooled.workers == 1
    assert pooled(data, filename="a.pdf", limits=limits()) == parse_document(
        data, filename="a.pdf", limits=limits()
    )


def test_a_workers_permanent_error_reaches_the_caller(pooled: WorkerPoolParser) -> None:
    with pytest.raises(EncryptedContentError):
        pooled(encrypted_pdf(), filename="locked.pdf", limits=limits())


def test_text_and_a_closed_pool_parse_in_process(pooled: WorkerPoolParser) -> None:
    text = b"# Notes\n\nThe parse of a text file never leaves this process.\n"
    assert pooled(text, filename="n.md") == parse_document(text, filename="n.md")
    closed = WorkerPoolParser(0)
    assert closed.workers == 0
    assert closed(sample_pdf(), filename="a.pdf") == parse_document(sample_pdf(), filename="a.pdf")
