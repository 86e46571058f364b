"""The answer prompt: instructions, numbered sources, history, and the context budget."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from shared.answering.openai_stream import OpenAIGenerator
from shared.answering.prompt import (
    HISTORY_ANSWER_TOKENS,
    HISTORY_SHARE,
    MIN_PASSAGE_TOKENS,
    NO_SOURCES,
    ChatMessage,
    build_prompt,
    estimate_tokens,
    prompt_tokens,
    source_header,
    truncate_to_tokens,
)
from shared.answering.types import Exchange, GenerationRequest, Passage
from shared.config import Settings, get_settings, read_settings
from shared.errors import LimitExceededError
from shared.tokens import utf8_bound


def passage(number: int, text: str, **overrides: object) -> Passage:
    fields: dict[str, object] = {
        "chunk_id": 100 + number,
        "document_id": f"doc-{number}",
        "version_id": f"ver-{number}",
        "kb_id": "kb",
        "filename": f"report-{number}.pdf",
        "title": f"Report {number}",
        "text": text,
        "page_start": number,
        "page_end": number + 1,
        "char_start": 0,
        "char_end": len(text),
        "heading_path": ("Part I", f"Item {number}"),
        "score": 1.0 / number,
    }
    fields.update(overrides)
    return Passage(**fields)  # type: ignore[arg-type]


def words_text(count: int, seed: int) -> str:
    rng = random.Random(seed)
    vocabulary = ["revenue", "increased", "quarter", "12.5%", "$4,210", "segment", "(3)", "the"]
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def user_message(messages: list[ChatMessage]) -> str:
    assert messages[-1]["role"] == "user"
    return messages[-1]["content"]


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- the estimator ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("revenue", 2),  # 7 letters: ceil(7 / 4)
        ("1234567", 3),  # digit groups of at most three
        ("a b", 2),  # single spaces are free
        ("a\n\nb", 3),  # other whitespace runs are not
        ("(12.3%)", 6),
        ("日本", 6),  # non-ASCII: one per UTF-8 byte
    ],
)
def test_estimate_tokens_by_piece(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


@pytest.mark.parametrize("seed", range(5))
def test_estimate_lies_between_pretokenised_pieces_and_the_byte_bound(seed: int) -> None:
    text = words_text(300, seed) + " Zürich \u2013 naïve 2024-03-31."
    # Lower bound: BPE never merges across pre-token pieces (words with their leading
    # space, digit groups of <= 3, punctuation runs); upper bound: one token per byte.
    pieces = re.findall(r" ?[^\W\d_]+|\d{1,3}| ?[^\w\s]+|\s+", text)
    assert len(pieces) <= estimate_tokens(text) <= utf8_bound(text)


def test_prompt_tokens_adds_the_chat_format_overhead() -> None:
    messages: list[ChatMessage] = [
        {"role": "system", "content": "abcd"},
        {"role": "user", "content": "efgh ijkl"},
    ]
    assert prompt_tokens(messages) == 1 + 2 + 2 * 4 + 3
    assert prompt_tokens(messages, estimator=len) == 4 + 9 + 2 * 4 + 3


# -- truncation ------------------------------------------------------------------------


def test_truncate_returns_text_that_fits_unchanged() -> None:
    assert truncate_to_tokens("short text", 100) == "short text"


@pytest.mark.parametrize("budget", [5, 7, 50, 333])
def test_truncate_cuts_at_the_last_word_boundary_that_fits(budget: int) -> None:
    text = words_text(1000, budget)
    cut = truncate_to_tokens(text, budget)
    assert text.startswith(cut) and len(cut) < len(text)
    assert estimate_tokens(cut) <= budget
    # At a word boundary, and maximal: one more word would not fit.
    assert text[len(cut)] == " "
    next_end = text.find(" ", len(cut) + 1)
    assert estimate_tokens(text[:next_end]) > budget


def test_truncate_cuts_inside_a_word_only_when_no_boundary_fits() -> None:
    text = "x" * 400 + " tail"
    cut = truncate_to_tokens(text, 10)
    assert cut == "x" * 40
    assert truncate_to_tokens(text, 0) == ""


def test_truncate_uses_the_given_estimator() -> None:
    cut = truncate_to_tokens("aaa bbb ccc ddd", 9, estimator=len)
    assert cut == "aaa bbb"


# -- the prompt ------------------------------------------------------------------------


def test_system_prompt_grounds_the_answer_in_numbered_sources() -> None:
    prompt = build_prompt(
        GenerationRequest("Why?", [passage(1, "Because.")]), max_context_tokens=2000
    )
    system = prompt.messages[0]
    assert system["role"] == "system"
    text = system["content"]
    assert "ONLY the numbered sources" in text
    assert "[1]" in text and "cite" in text.lower()
    assert "documents do not contain the answer" in text
    assert "Never invent sources" in text


def test_sources_are_numbered_with_file_title_pages_and_headings() -> None:
    request = GenerationRequest(
        "How did revenue change?",
        [
            passage(1, "Revenue rose 5%."),
            passage(2, "Costs fell.", title=None, page_start=7, page_end=7, heading_path=()),
            passage(3, "Unpaged text.", page_start=None, page_end=None),
        ],
    )
    prompt = build_prompt(request, max_context_tokens=2000)
    content = user_message(prompt.messages)
    assert '[1] report-1.pdf | "Report 1" | pages 1-2 | section: Part I > Item 1\n' in content
    assert "[2] report-2.pdf | page 7\nCosts fell." in content
    assert '[3] report-3.pdf | "Report 3" | section: Part I > Item 3\nUnpaged text.' in content
    assert content.index("[1]") < content.index("[2]") < content.index("[3]")
    assert content.index("[3]") < content.index("Question: How did revenue change?")
    assert prompt.included == (1, 2, 3) and prompt.truncated is None


def test_bracketed_numbers_inside_sources_cannot_pose_as_markers() -> None:
    request = GenerationRequest("q", [passage(1, "As shown in [12] and [3, 4], sales [a] rose.")])
    content = user_message(build_prompt(request, max_context_tokens=2000).messages)
    assert "As shown in (12) and (3, 4), sales [a] rose." in content


def test_no_passages_says_there_are_no_sources() -> None:
    prompt = build_prompt(GenerationRequest("q", []), max_context_tokens=2000)
    assert NO_SOURCES in user_message(prompt.messages)
    assert prompt.included == ()


@pytest.mark.parametrize("budget", [700, 1200, 2500, 6000])
def test_huge_passages_never_overflow_the_budget(budget: int) -> None:
    passages = [passage(n, words_text(4000, n)) for n in range(1, 6)]
    prompt = build_prompt(GenerationRequest("What happened?", passages), max_context_tokens=budget)
    assert prompt.tokens == prompt_tokens(prompt.messages) <= budget
    assert prompt.budget == budget
    k = len(prompt.included)
    assert prompt.included == tuple(range(1, k + 1)) and k >= 1
    assert prompt.truncated == k  # the last one given was cut to fit
    content = user_message(prompt.messages)
    block = content.split(source_header(k, passages[k - 1]) + "\n", 1)[1].split("\n\n", 1)[0]
    assert block.endswith(" …")
    kept = block.removesuffix(" …")
    assert passages[k - 1].text.startswith(kept) and passages[k - 1].text[len(kept)] == " "
    assert f"[{k + 1}] " not in content  # filling stopped at the truncated passage
    # Little is wasted: the room left is less than a passage header plus a useful cut.
    assert budget - prompt.tokens < MIN_PASSAGE_TOKENS + 40


def test_more_budget_never_gives_fewer_passages() -> None:
    passages = [passage(n, words_text(300, n)) for n in range(1, 9)]
    request = GenerationRequest("q", passages)
    counts = [
        len(build_prompt(request, max_context_tokens=b).included) for b in range(600, 4000, 300)
    ]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_passages_that_fit_are_given_whole() -> None:
    passages = [passage(n, words_text(50, n)) for n in range(1, 4)]
    prompt = build_prompt(GenerationRequest("q", passages), max_context_tokens=6000)
    assert prompt.included == (1, 2, 3) and prompt.truncated is None
    assert all(p.text in user_message(prompt.messages) for p in passages)


def test_a_sliver_of_room_is_not_filled_with_a_useless_fragment() -> None:
    small = passage(1, words_text(40, 1))
    huge = passage(2, words_text(3000, 2))
    alone = build_prompt(GenerationRequest("q", [small]), max_context_tokens=6000).tokens
    budget = alone + MIN_PASSAGE_TOKENS // 2
    prompt = build_prompt(GenerationRequest("q", [small, huge]), max_context_tokens=budget)
    assert prompt.included == (1,) and prompt.truncated is None
    assert prompt.tokens <= budget


def test_the_budget_follows_an_injected_estimator() -> None:
    passages = [passage(n, words_text(2000, n)) for n in range(1, 4)]
    request = GenerationRequest("q", passages)
    by_bytes = build_prompt(request, max_context_tokens=3000, estimator=utf8_bound)
    assert prompt_tokens(by_bytes.messages, utf8_bound) == by_bytes.tokens <= 3000
    default = build_prompt(request, max_context_tokens=3000)
    # The byte bound is far more conservative, so less text fits.
    assert len(user_message(by_bytes.messages)) < len(user_message(default.messages))


def test_a_question_too_long_for_the_budget_is_refused() -> None:
    with pytest.raises(LimitExceededError, match="too long"):
        build_prompt(GenerationRequest("why " * 2000, []), max_context_tokens=1000)


def test_the_default_budget_and_history_come_from_settings(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv("RAGLINE_ANSWER_CONTEXT_TOKENS", "900")
    monkeypatch.setenv("RAGLINE_ANSWER_HISTORY_EXCHANGES", "1")
    history = [Exchange(f"question {i}", f"answer {i}") for i in range(3)]
    passages = [passage(n, words_text(2000, n)) for n in range(1, 3)]
    # The generator builds its prompts within this instance's settings.
    generator = OpenAIGenerator(read_settings(), api_key="unused")
    prompt = generator.generate(GenerationRequest("q", passages, history)).prompt
    assert prompt.budget == 900 and prompt.tokens <= 900
    assert prompt.history == 1


def test_without_settings_the_budget_and_history_are_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The environment is never read behind the caller's back.
    monkeypatch.setenv("RAGLINE_ANSWER_CONTEXT_TOKENS", "900")
    history = [Exchange(f"question {i}", f"answer {i}") for i in range(20)]
    prompt = build_prompt(GenerationRequest("q", [passage(1, "text")], history))
    defaults = Settings.model_fields
    assert prompt.budget == defaults["answer_context_tokens"].default
    assert prompt.history == defaults["answer_history_exchanges"].default


# -- history ---------------------------------------------------------------------------


def test_history_is_given_as_earlier_turns_without_their_markers() -> None:
    history = [
        Exchange("What is X?", "X is a widget [1]. It is blue [2, 3]."),
        Exchange("And Y?", "Y is a gadget [1]."),
    ]
    request = GenerationRequest("Which is cheaper?", [passage(1, "Price list.")], history)
    prompt = build_prompt(request, max_context_tokens=3000, max_history=5)
    assert [(m["role"], m["content"]) for m in prompt.messages[1:-1]] == [
        ("user", "What is X?"),
        ("assistant", "X is a widget. It is blue."),
        ("user", "And Y?"),
        ("assistant", "Y is a gadget."),
    ]
    assert prompt.history == 2
    assert "Question: Which is cheaper?" in user_message(prompt.messages)


def test_history_keeps_the_newest_exchanges_and_trims_long_answers() -> None:
    history = [Exchange(f"question {i}?", words_text(2000, i)) for i in range(6)]
    request = GenerationRequest("q", [], history)
    prompt = build_prompt(request, max_context_tokens=6000, max_history=3)
    turns = prompt.messages[1:-1]
    assert [m["content"] for m in turns[::2]] == ["question 3?", "question 4?", "question 5?"]
    for answer in turns[1::2]:
        assert answer["content"].endswith(" …")
        assert estimate_tokens(answer["content"]) <= HISTORY_ANSWER_TOKENS + estimate_tokens(" …")
    history_tokens = prompt_tokens(turns) - 3
    assert history_tokens <= 6000 * HISTORY_SHARE


def test_history_never_pushes_the_prompt_over_budget() -> None:
    history = [Exchange(words_text(500, i), words_text(2000, i + 50)) for i in range(4)]
    passages = [passage(n, words_text(3000, n)) for n in range(1, 4)]
    for budget in (800, 1500, 4000):
        prompt = build_prompt(
            GenerationRequest("q", passages, history), max_context_tokens=budget, max_history=4
        )
        assert prompt.tokens <= budget
        assert prompt_tokens(prompt.messages[1:-1]) - 3 <= budget * HISTORY_SHARE


def test_no_history_when_disabled() -> None:
    request = GenerationRequest("q", [], [Exchange("a?", "b.")])
    prompt = build_prompt(request, max_context_tokens=3000, max_history=0)
    assert len(prompt.messages) == 2 and prompt.history == 0
