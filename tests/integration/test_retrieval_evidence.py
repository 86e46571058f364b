"""The default routing (``auto``): a name narrows a per-entity collection, not a topical one.

The same default serves both: a company's name on the cover of long filings is their
subject, while a term in short abstracts is a topic full text already finds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.localstack.stack import LocalStack
from shared.retrieval.search import Retrieval, RetrievalRequest, retrieve
from tests.support.api import Api
from tests.support.filings import COMPANIES, filing
from tests.support.stack import wipe_stack

ABSTRACTS = {
    "mri-lesions": "MRI detects early white matter lesions in multiple sclerosis patients.",
    "mri-knee": "MRI of the knee shows cartilage loss after injury in athletes.",
    "resonance": "Magnetic resonance imaging found early lesions in the white matter.",
    "statins": "Statins lower cholesterol and cardiovascular events in older adults.",
    "sleep": "Short sleep raises blood pressure in adolescents over two years.",
    "diet": "A low salt diet lowers blood pressure in adults with hypertension.",
}


@pytest.fixture
def collections(stack: LocalStack) -> Iterator[dict[str, dict[str, str]]]:
    """Filings and abstracts, each in a knowledge base with the default settings."""
    wipe_stack(stack)
    api = Api(stack)
    filings = api.create_kb("filings", chunk_tokens=32, chunk_overlap=0)
    papers = api.create_kb("papers")
    assert filings["routing"] == papers["routing"] == "auto"
    kbs = {
        filings["id"]: {
            company: api.upload(filings["id"], f"{company.lower()}.md", filing(company))[
                "document_id"
            ]
            for company in COMPANIES
        },
        papers["id"]: {
            name: api.upload(papers["id"], f"{name}.md", f"# {name}\n\n{text}\n".encode())[
                "document_id"
            ]
            for name, text in ABSTRACTS.items()
        },
    }
    stack.wait_idle(180)
    yield kbs
    wipe_stack(stack)


def _ask(stack: LocalStack, kb_id: str, question: str) -> Retrieval:
    return retrieve(
        stack.database,
        RetrievalRequest(
            query=question, kb_ids=[kb_id], workspace=stack.settings.default_workspace, top_k=4
        ),
    )


def test_a_company_on_long_filings_covers_narrows_to_its_filings(
    stack: LocalStack, collections: dict[str, dict[str, str]]
) -> None:
    (filings, documents), _ = collections.items()
    found = _ask(stack, filings, "How did Globex's revenue grow in the quarter?")
    assert found.routed_to == [documents["Globex"]]
    assert {p.document_id for p in found.passages} == {documents["Globex"]}


def test_a_topic_in_short_abstracts_narrows_nothing(
    stack: LocalStack, collections: dict[str, dict[str, str]]
) -> None:
    _, (papers, documents) = collections.items()
    question = "Does MRI find early white matter lesions?"
    found = _ask(stack, papers, question)
    assert found.routed_to is None
    assert documents["resonance"] in {p.document_id for p in found.passages}

    api = Api(stack)
    switched = api.patch(f"/v1/knowledge-bases/{papers}", json={"routing": "names"})
    assert switched.status_code == 200, switched.get_data(as_text=True)
    filtered = _ask(stack, papers, question)
    assert documents["resonance"] not in {p.document_id for p in filtered.passages}
