"""Answer generation through the real ``openai`` client against a local compatible llm.

Covers streaming and non-streaming completions, usage, retries (429 with Retry-After,
persistent 5xx), error mapping, closing mid-stream, citation checking of streamed
text, the context budget as the llm sees it, and the offline extractive fallback.
"""

from __future__ import annotations

import random
import re

import pytest

from shared.answering.citations import build_citations, cited_numbers
from shared.answering.generators import (
    EXTRACTIVE_LABEL,
    ExtractiveGenerator,
    GenerationError,
    OpenAIGenerator,
    OpenAIStream,
    TextStream,
    clear_generator_cache,
    complete_chat,
    get_generator,
    get_openai_client,
)
from shared.answering.prompt import build_prompt, prompt_tokens
from shared.answering.types import Exchange, GenerationRequest, Passage
from shared.api.http import status_of
from shared.config import read_settings
from tests.support.openai_server import (
    LLM_API_KEY,
    LLM_MODEL,
    OpenAIServer,
    Reply,
    chat_chunk,
    chat_usage,
)

CHAT = "/v1/chat/completions"


def passage(number: int, text: str) -> Passage:
    return Passage(
        chunk_id=number,
        document_id=f"doc-{number}",
        version_id=f"ver-{number}",
        kb_id="kb",
        filename=f"q{number}-report.pdf",
        title=None,
        text=text,
        page_start=number,
        page_end=number,
        char_start=0,
        char_end=len(text),
        heading_path=("Results",),
        score=1.0 / number,
    )


PASSAGES = [
    passage(1, "Net revenue increased 12% to $5.2 billion in the third quarter."),
    passage(2, "Services revenue grew 20% on subscriptions. Hardware sales were flat."),
    passage(3, "The board approved a dividend of $0.25 per share."),
]
REQUEST = GenerationRequest("How did revenue change in the third quarter?", PASSAGES)


def generator(**options: object) -> OpenAIGenerator:
    """A generator on the shared client, with quick retries for the tests."""
    options.setdefault("max_retries", 2)
    return OpenAIGenerator(read_settings(), **options)  # type: ignore[arg-type]


def sent_messages(llm: OpenAIServer) -> list[dict[str, str]]:
    [request] = llm.requests_to(CHAT)
    return request.json["messages"]


# -- choosing the generator -----------------------------------------------------------


def test_get_generator_picks_openai_when_a_key_is_set(llm: OpenAIServer) -> None:
    chosen = get_generator(read_settings())
    assert isinstance(chosen, OpenAIGenerator)
    assert (chosen.kind, chosen.model) == ("llm", LLM_MODEL)
    assert get_generator(read_settings()) is chosen  # cached per process
    assert get_openai_client(read_settings()) is get_openai_client(
        read_settings()
    )  # one client per process


def test_get_generator_falls_back_to_extractive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    clear_generator_cache()
    try:
        chosen = get_generator(read_settings())
        assert isinstance(chosen, ExtractiveGenerator)
        assert (chosen.kind, chosen.model) == ("extractive", "extractive")
    finally:
        clear_generator_cache()


# -- streaming ---------------------------------------------------------------------------


def test_streams_the_answer_with_usage_to_the_configured_model_and_url(
    llm: OpenAIServer,
) -> None:
    answer = "Net revenue rose 12% [1], led by services [2]."
    llm.script_chat(answer)
    stream = get_generator(read_settings()).generate(REQUEST)
    assert llm.requests == []  # nothing is sent before iteration
    deltas = list(stream)
    assert len(deltas) > 3  # it streamed, piece by piece
    assert "".join(deltas) == answer
    [request] = llm.requests_to(CHAT)  # went to OPENAI_BASE_URL (the local llm)
    body = request.json
    assert request.headers["authorization"] == f"Bearer {LLM_API_KEY}"
    assert body["model"] == LLM_MODEL
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] > 0 and "temperature" in body
    # The llm streams word by word and counts words of the prompt as its tokens.
    expected = chat_usage(body["messages"], re.findall(r"\s*\S+", answer))
    assert stream.usage.model == LLM_MODEL
    assert stream.usage.prompt_tokens == expected["prompt_tokens"] > 0
    assert stream.usage.completion_tokens == expected["completion_tokens"] > 0
    assert stream.usage.total_tokens == expected["total_tokens"]
    assert isinstance(stream, OpenAIStream) and stream.finish_reason == "stop"


def test_the_prompt_sent_holds_numbered_sources_history_and_question(
    llm: OpenAIServer,
) -> None:
    request = GenerationRequest(
        REQUEST.question, PASSAGES, [Exchange("What is the dividend?", "It is $0.25 [3].")]
    )
    list(generator().generate(request))
    messages = sent_messages(llm)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "ONLY the numbered sources" in messages[0]["content"]
    assert messages[2]["content"] == "It is $0.25."
    last = messages[-1]["content"]
    assert "[1] q1-report.pdf | page 1 | section: Results\nNet revenue increased" in last
    assert "[3] q3-report.pdf" in last and f"Question: {REQUEST.question}" in last


def test_non_streaming_completion_records_usage(llm: OpenAIServer) -> None:
    llm.script_chat("A short reply.")
    completion = complete_chat(
        get_openai_client(read_settings()),
        LLM_MODEL,
        [{"role": "user", "content": "one two three"}],
        max_tokens=20,
        temperature=0.0,
    )
    assert completion.text == "A short reply."
    assert completion.finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 3)
    assert completion.usage.total_tokens == 6 and completion.usage.model == LLM_MODEL
    [request] = llm.requests_to(CHAT)
    assert not request.json.get("stream")


# -- retries and errors ----------------------------------------------------------------


def test_a_429_with_retry_after_is_retried_then_answers(llm: OpenAIServer) -> None:
    llm.fail(429, headers={"Retry-After": "0.05"}, path=CHAT)
    llm.script_chat("Revenue rose [1].")
    stream = generator().generate(REQUEST)
    assert "".join(stream) == "Revenue rose [1]."
    assert len(llm.requests_to(CHAT)) == 2
    assert stream.usage.total_tokens > 0


def test_a_persistent_500_raises_a_clear_retryable_error(llm: OpenAIServer) -> None:
    # retry-after-ms keeps the client's backoff short; the count of tries is the point.
    llm.fail(500, times=10, headers={"retry-after-ms": "5"}, path=CHAT)
    stream = generator(max_retries=2).generate(REQUEST)
    with pytest.raises(GenerationError) as caught:
        list(stream)
    error = caught.value
    assert (error.code, error.retryable, status_of(error)) == ("llm_unavailable", True, 503)
    assert "(500)" in error.message and "3 attempts" in error.message
    assert len(llm.requests_to(CHAT)) == 3


def test_rate_limits_that_persist_carry_the_servers_wait(llm: OpenAIServer) -> None:
    # A Retry-After over the client's two-minute cap is not waited out in-process.
    llm.fail(429, headers={"Retry-After": "600"}, path=CHAT)
    with pytest.raises(GenerationError) as caught:
        list(generator().generate(REQUEST))
    assert caught.value.code == "llm_rate_limited" and caught.value.retryable
    assert caught.value.retry_after == 600
    assert len(llm.requests_to(CHAT)) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(400, "llm_rejected"), (404, "llm_rejected"), (401, "llm_unauthorized")]
)
def test_client_errors_are_permanent_and_not_retried(
    llm: OpenAIServer, status: int, code: str
) -> None:
    llm.fail(status, path=CHAT)
    with pytest.raises(GenerationError) as caught:
        list(generator().generate(REQUEST))
    assert (caught.value.code, caught.value.retryable, status_of(caught.value)) == (
        code,
        False,
        502,
    )
    assert f"({status})" in caught.value.message
    assert len(llm.requests_to(CHAT)) == 1


def test_a_dropped_connection_is_retryable(llm: OpenAIServer) -> None:
    llm.enqueue(Reply(drop=True), path=CHAT)
    with pytest.raises(GenerationError) as caught:
        list(generator(max_retries=0).generate(REQUEST))
    assert (caught.value.code, caught.value.retryable) == ("llm_unavailable", True)


def test_an_error_event_mid_stream_stops_with_a_clear_error(llm: OpenAIServer) -> None:
    llm.enqueue(
        Reply(
            stream=[
                chat_chunk(LLM_MODEL, {"role": "assistant", "content": "Revenue"}),
                chat_chunk(LLM_MODEL, {"content": " rose"}),
                {"error": {"message": "model overloaded", "type": "server_error"}},
            ]
        ),
        path=CHAT,
    )
    received: list[str] = []
    with pytest.raises(GenerationError) as caught:
        received.extend(generator().generate(REQUEST))
    assert received == ["Revenue", " rose"]
    assert caught.value.code == "llm_stream_error" and "model overloaded" in caught.value.message


# -- closing early -----------------------------------------------------------------------


def test_close_mid_stream_closes_the_connection(llm: OpenAIServer) -> None:
    llm.script_chat(["word "] * 400, interval=0.01)
    stream = generator().generate(REQUEST)
    deltas = iter(stream)
    assert [next(deltas) for _ in range(3)] == ["word"] + [" word"] * 2
    stream.close()  # not resuming the iterator: close() alone must drop the connection
    [record] = llm.wait_streams(1, timeout=3)
    assert record.aborted  # the llm saw the client go away ...
    assert record.sent < record.total  # ... long before the answer was over
    assert list(deltas) == []  # and the generator stops
    assert stream.usage.total_tokens == 0  # never reported: the final chunk was not sent


def test_close_before_iterating_sends_nothing(llm: OpenAIServer) -> None:
    stream = generator().generate(REQUEST)
    stream.close()
    assert list(stream) == []
    assert llm.requests == []


# -- citations -------------------------------------------------------------------------


def test_invalid_markers_are_dropped_from_the_stream_and_the_citations(
    llm: OpenAIServer,
) -> None:
    # Passage 3 does not fit the budget below; [7] does not exist; markers arrive split.
    deltas = [
        "Revenue rose 12% [",
        "1]",
        ", services grew [2][",
        "7]",
        " and a dividend",
        " [3",
        "].",
    ]
    llm.script_chat(deltas)
    big = [passage(1, PASSAGES[0].text), passage(2, PASSAGES[1].text)]
    big.append(passage(3, "dividend " * 3000))
    request = GenerationRequest(REQUEST.question, big)
    # Room for passages 1 and 2, but not even for a useful cut of passage 3.
    budget = build_prompt(GenerationRequest(REQUEST.question, big[:2])).tokens + 10
    stream = generator(max_context_tokens=budget).generate(request)
    text = "".join(stream)
    assert isinstance(stream, OpenAIStream) and stream.included == (1, 2)
    assert text == "Revenue rose 12% [1], services grew [2] and a dividend."
    citations = build_citations(text, big, stream.included)
    assert [c.n for c in citations] == [1, 2]
    assert citations[0].snippet == PASSAGES[0].text
    # Checking the raw, unfiltered text gives the same citations: never [3] or [7].
    raw = build_citations("".join(deltas), big, stream.included)
    assert [c.n for c in raw] == [1, 2]
    assert cited_numbers("".join(deltas)) == [1, 2, 7, 3]


def test_the_prompt_the_server_receives_stays_within_the_budget(llm: OpenAIServer) -> None:
    rng = random.Random(3)
    vocabulary = ["revenue", "12.5%", "$4,210", "(3)", "segment", "quarter", "—", "net"]
    huge = [passage(n, " ".join(rng.choices(vocabulary, k=20_000))) for n in range(1, 6)]
    for budget in (1000, 3000):
        llm.reset()
        stream = generator(max_context_tokens=budget).generate(
            GenerationRequest(REQUEST.question, huge)
        )
        list(stream)
        messages = sent_messages(llm)
        assert prompt_tokens(messages) <= budget  # type: ignore[arg-type]
        assert isinstance(stream, OpenAIStream)
        assert stream.prompt.truncated == len(stream.included) >= 1
        content = messages[-1]["content"]
        assert content.count(" …\n") == 1  # exactly one passage was cut, at its end
        assert f"[{len(stream.included) + 1}] " not in content


# -- the offline fallback --------------------------------------------------------------


def test_extractive_answers_quote_and_cite_the_best_sentences() -> None:
    stream = ExtractiveGenerator().generate(REQUEST)
    deltas = list(stream)
    text = "".join(deltas)
    assert len(deltas) > 10  # streamed in small pieces
    assert text.startswith(EXTRACTIVE_LABEL)
    assert '"Net revenue increased 12% to $5.2 billion in the third quarter." [1]' in text
    assert '"Services revenue grew 20% on subscriptions." [2]' in text
    assert "dividend" not in text and "Hardware" not in text  # no overlap with the question
    assert text.index("[1]") < text.index("[2]")  # better match, better rank: first
    assert (stream.usage.model, stream.usage.total_tokens) == ("extractive", 0)
    assert [c.n for c in build_citations(text, PASSAGES)] == [1, 2]


def test_extractive_prefers_higher_ranked_passages_on_equal_matches() -> None:
    same = "Operating margin was 30% this quarter."
    request = GenerationRequest(
        "What was the operating margin?", [passage(1, same), passage(2, same + " ")]
    )
    picked = ExtractiveGenerator().select(request)
    assert picked == [(1, same)]  # the duplicate in passage 2 is skipped


def test_extractive_says_so_when_nothing_matches() -> None:
    stream = ExtractiveGenerator().generate(GenerationRequest("Who founded Rome?", PASSAGES))
    text = "".join(stream)
    assert text.startswith(EXTRACTIVE_LABEL)
    assert "do not appear to contain an answer" in text and "[" not in text


def test_extractive_stream_stops_at_close() -> None:
    stream = ExtractiveGenerator().generate(REQUEST)
    assert isinstance(stream, TextStream)
    deltas = iter(stream)
    first = next(deltas)
    stream.close()
    assert first == "Extractive" and list(deltas) == []
