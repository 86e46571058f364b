"""Follow-up questions become standalone queries: offline heuristic and the model call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.answering.generators import clear_generator_cache
from shared.answering.rewrite import (
    REWRITE_MAX_RETRIES,
    REWRITE_SYSTEM_PROMPT,
    heuristic_rewrite,
    is_follow_up,
    rewrite_question,
)
from shared.answering.types import Exchange
from shared.config import read_settings
from tests.support.openai_server import LLM_MODEL, OpenAIServer, RecordedRequest

CHAT = "/v1/chat/completions"
REVENUE = Exchange("What was Apple's revenue in Q3 2024?", "Revenue was $85.8 billion [1].")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    clear_generator_cache()
    yield
    clear_generator_cache()


# -- the heuristic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What about its net income?", True),
        ("And in 2023?", True),
        ("How about Microsoft?", True),
        ("Why did they do that?", True),
        ("Why?", True),
        ("Q4 too", True),
        ("What was Apple's revenue in Q3 2024?", False),
        ("How does pgvector build an HNSW index?", False),
        ("", False),
    ],
)
def test_is_follow_up(question: str, expected: bool) -> None:
    assert is_follow_up(question) is expected


def test_a_follow_up_borrows_the_previous_questions_content_words() -> None:
    query = heuristic_rewrite("What about its net income?", [REVENUE])
    assert query == "What about its net income? Apple's revenue Q3 2024"


def test_words_the_question_already_has_are_not_repeated() -> None:
    query = heuristic_rewrite("And the revenues in Q4?", [REVENUE])
    assert query == "And the revenues in Q4? Apple's Q3 2024"


def test_a_chain_of_follow_ups_keeps_the_original_subject() -> None:
    history = [
        Exchange("What was Microsoft's cloud revenue?", "It was $30B [1]."),
        Exchange("And in Q2?", "It was $28B [1]."),
    ]
    assert heuristic_rewrite("Why?", history) == "Why? Q2 Microsoft's cloud revenue"


def test_the_walk_back_stops_at_a_standalone_question() -> None:
    history = [
        Exchange("What is the dividend policy?", "..."),
        Exchange("What was Microsoft's cloud revenue?", "..."),
    ]
    assert heuristic_rewrite("And in Q2?", history) == "And in Q2? Microsoft's cloud revenue"


def test_standalone_questions_and_first_questions_are_unchanged() -> None:
    standalone = "How many employees did Apple have in 2024?"
    assert heuristic_rewrite(standalone, [REVENUE]) == standalone
    assert heuristic_rewrite("What about its net income?", []) == "What about its net income?"


def test_offline_rewrite_uses_the_heuristic(offline: None) -> None:
    assert rewrite_question(
        "  What about its net income? ", [REVENUE], settings=read_settings()
    ) == ("What about its net income? Apple's revenue Q3 2024")


# -- with a model ----------------------------------------------------------------------


def test_the_model_rewrites_follow_ups(llm: OpenAIServer) -> None:
    llm.script_chat('"Apple net income Q3 2024"\n')
    query = rewrite_question("What about its net income?", [REVENUE], settings=read_settings())
    assert query == "Apple net income Q3 2024"
    [request] = llm.requests_to(CHAT)
    body = request.json
    assert body["model"] == LLM_MODEL
    assert not body.get("stream")  # one short, non-streaming completion
    assert body["max_tokens"] <= 100 and body["temperature"] == 0
    system, user = body["messages"]
    assert system == {"role": "system", "content": REWRITE_SYSTEM_PROMPT}
    assert "User: What was Apple's revenue in Q3 2024?" in user["content"]
    assert "Assistant: Revenue was $85.8 billion." in user["content"]  # markers stripped
    assert user["content"].endswith("Latest question: What about its net income?")


def test_no_history_means_no_model_call(llm: OpenAIServer) -> None:
    assert (
        rewrite_question("What about its net income?", [], settings=read_settings())
        == "What about its net income?"
    )
    assert llm.requests == []


def test_a_failing_model_falls_back_to_the_heuristic(llm: OpenAIServer) -> None:
    llm.fail(500, times=5, headers={"retry-after-ms": "1"}, path=CHAT)
    query = rewrite_question("What about its net income?", [REVENUE], settings=read_settings())
    assert query == "What about its net income? Apple's revenue Q3 2024"
    assert len(llm.requests_to(CHAT)) == 1 + REWRITE_MAX_RETRIES


def test_a_reply_that_is_not_a_query_falls_back_to_the_heuristic(llm: OpenAIServer) -> None:
    def chatty(request: RecordedRequest) -> str:
        return "Sure! " + "Here is a long explanation of net income. " * 20

    llm.script_chat(chatty)
    query = rewrite_question("What about its net income?", [REVENUE], settings=read_settings())
    assert query == "What about its net income? Apple's revenue Q3 2024"
    assert len(llm.requests_to(CHAT)) == 1
