"""Citation markers: parsing, dropping invalid ones (batch and streaming), Citation objects."""

from __future__ import annotations

import itertools

import pytest

from shared.answering.citations import (
    SNIPPET_CHARS,
    CitationFilter,
    best_snippet,
    build_citations,
    cited_numbers,
    filter_markers,
    split_sentences,
    terms,
)
from shared.answering.types import Passage


def passage(number: int, text: str) -> Passage:
    return Passage(
        chunk_id=10 + number,
        document_id=f"doc-{number}",
        version_id=f"ver-{number}",
        kb_id="kb-1",
        filename=f"file-{number}.pdf",
        title=f"Title {number}" if number % 2 else None,
        text=text,
        page_start=number,
        page_end=number + 2,
        char_start=1000 * number,
        char_end=1000 * number + len(text),
        heading_path=("Results",),
        score=1.0 - number / 10,
    )


def stream(text: str, valid: set[int], pieces: list[int]) -> str:
    """Feed ``text`` cut at ``pieces`` offsets through a filter; return all output."""
    cuts = [0, *pieces, len(text)]
    citation_filter = CitationFilter(valid)
    out = [citation_filter.feed(text[a:b]) for a, b in itertools.pairwise(cuts)]
    return "".join(out) + citation_filter.flush()


# -- parsing ---------------------------------------------------------------------------


def test_cited_numbers_reads_every_marker_form_in_first_cited_order() -> None:
    text = "A [2]. B [1, 3]. C [4][2]. D [ 5 ,6 ]. E [1]."
    assert cited_numbers(text) == [2, 1, 3, 4, 5, 6]
    assert cited_numbers(text, valid={1, 4, 6}) == [1, 4, 6]


def test_text_in_brackets_is_not_a_marker() -> None:
    assert cited_numbers("See [note], [a1], [1a], [] and [link](http://x/1).") == []


# -- dropping invalid markers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sales rose [1].", "Sales rose [1]."),
        ("Sales rose [7].", "Sales rose."),
        ("Sales rose [0] fast.", "Sales rose fast."),
        ("Sales rose [1, 7].", "Sales rose [1]."),
        ("Sales rose [7, 2, 2].", "Sales rose [2]."),
        ("Sales rose [1][7][2].", "Sales rose [1][2]."),
        ("Sales rose [1,2].", "Sales rose [1,2]."),  # valid groups keep their spacing
        ("Sales [rose] [12", "Sales [rose] [12"),  # no marker: untouched
    ],
)
def test_filter_markers(text: str, expected: str) -> None:
    assert filter_markers(text, {1, 2}) == expected


ANSWER = (
    "Revenue rose 12% [1]. Costs fell [9], while margins grew [2, 7]. "
    "Guidance [3][1] is unchanged [0].\n\nSee [note] and [12 for details [2]"
)


def test_streaming_filter_matches_the_batch_filter_for_every_split() -> None:
    valid = {1, 2}
    expected = filter_markers(ANSWER, valid)
    assert "[9]" not in expected and "[3]" not in expected and "7" not in expected
    for cut in range(len(ANSWER) + 1):
        assert stream(ANSWER, valid, [cut]) == expected
    for cut in range(0, len(ANSWER) - 3):
        assert stream(ANSWER, valid, [cut, cut + 2, cut + 3]) == expected
    assert stream(ANSWER, valid, list(range(1, len(ANSWER)))) == expected  # char by char


def test_streaming_filter_releases_text_promptly() -> None:
    citation_filter = CitationFilter({1})
    assert citation_filter.feed("Revenue rose") == "Revenue rose"
    assert citation_filter.feed(" sharply ") == " sharply"  # the space waits for a marker
    assert citation_filter.feed("[") == ""
    assert citation_filter.feed("1") == ""
    assert citation_filter.feed("] in") == " [1] in"
    assert citation_filter.feed(" Q3 [4") == " Q3"
    assert citation_filter.feed("]. Done") == ". Done"
    assert citation_filter.feed(" [see") == " [see"  # cannot become a marker
    assert citation_filter.flush() == ""


def test_streaming_filter_does_not_hold_a_long_bracket_forever() -> None:
    citation_filter = CitationFilter({1})
    out = citation_filter.feed("[" + "1" * 100)
    assert out == "[" + "1" * 100


def test_flush_releases_an_unfinished_tail() -> None:
    citation_filter = CitationFilter({1})
    assert citation_filter.feed("ends with [1") == "ends with"
    assert citation_filter.flush() == " [1"


# -- sentences and snippets ------------------------------------------------------------


def test_sentences_ignore_abbreviations_and_split_paragraphs() -> None:
    text = "Apple Inc. sold more in the U.S. market. Costs fell!\n\nNew para without end"
    sentences = [text[a:b] for a, b in split_sentences(text)]
    assert sentences == [
        "Apple Inc. sold more in the U.S. market.",
        "Costs fell!",
        "New para without end",
    ]


def test_terms_drop_stopwords_and_fold_plurals_and_possessives() -> None:
    assert terms("What were Apple's revenues for the companies?") == [
        "apple",
        "revenue",
        "company",
    ]


def test_snippet_is_the_sentence_that_supports_the_claim() -> None:
    text = (
        "The company operates worldwide. Headcount grew to 12,000 employees. "
        "Net revenue increased 12% to $5.2 billion in the third quarter. "
        "Operating expenses were flat."
    )
    snippet = best_snippet(text, "Net revenue increased 12%", max_chars=120)
    assert snippet.startswith("…Net revenue increased 12% to $5.2 billion")
    assert len(snippet) <= 120
    assert best_snippet(text, "headcount", max_chars=40) == "…Headcount grew to 12,000 employees.…"


def test_snippet_without_overlap_is_the_passage_start() -> None:
    text = "First sentence here. Second sentence here. " * 20
    snippet = best_snippet(text, "unrelated words", max_chars=SNIPPET_CHARS)
    assert snippet.startswith("First sentence here.") and snippet.endswith("…")
    assert len(snippet) <= SNIPPET_CHARS


def test_snippet_of_one_enormous_sentence_is_clipped() -> None:
    text = " ".join(f"word{i}" for i in range(500))
    snippet = best_snippet(text, "word250")
    assert len(snippet) <= SNIPPET_CHARS and snippet.endswith("…")
    assert snippet.startswith("word0 word1")


# -- citations -------------------------------------------------------------------------


def test_build_citations_maps_valid_markers_to_passages_in_first_cited_order() -> None:
    passages = [
        passage(1, "Costs were flat. Revenue increased 12% in Q3."),
        passage(2, "Margins grew to 40% on services. Staff grew."),
        passage(3, "Guidance is unchanged."),
    ]
    answer = "Margins grew to 40% [2]. Revenue increased 12% [1, 9]. Again [2]. Guidance [3]."
    citations = build_citations(answer, passages, valid={1, 2})
    assert [c.n for c in citations] == [2, 1]  # [9] is past the end, [3] was not given
    first = citations[0]
    assert (first.chunk_id, first.document_id, first.version_id, first.kb_id) == (
        12,
        "doc-2",
        "ver-2",
        "kb-1",
    )
    assert (first.filename, first.title, first.page_start, first.page_end) == (
        "file-2.pdf",
        None,
        2,
        4,
    )
    assert (first.char_start, first.char_end, first.score) == (2000, 2000 + 44, 0.8)
    assert first.snippet == "Margins grew to 40% on services. Staff grew."  # fits whole
    assert citations[1].snippet == "…Revenue increased 12% in Q3."
    assert citations[1].title == "Title 1"
    assert first.to_json()["snippet"] == first.snippet


def test_build_citations_defaults_to_every_passage_and_ignores_unknown_numbers() -> None:
    passages = [passage(1, "One."), passage(2, "Two.")]
    citations = build_citations("x [2] y [1] z [3] w [0]", passages)
    assert [c.n for c in citations] == [2, 1]


def test_a_marker_opening_a_sentence_is_checked_against_the_sentence_before() -> None:
    passages = [passage(1, "Unrelated opening. Inventory fell by half in May.")]
    citations = build_citations("Inventory fell by half. [1]", passages)
    assert citations[0].snippet == "…Inventory fell by half in May."


def test_no_markers_no_citations() -> None:
    assert build_citations("The documents do not contain the answer.", [passage(1, "x")]) == []
