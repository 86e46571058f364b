"""Turn a follow-up question of a session into a standalone query before retrieval.

"What about its net income?" retrieves nothing useful on its own; with the session's
previous question ("What was Apple's revenue in Q3 2024?") it becomes a query that
does. With OpenAI configured one short chat completion does the rewrite; offline (or
when that call fails) a heuristic adds the previous questions' content words to a
question that looks like a follow-up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.answering.citations import clip, content_words, normalize_term, words
from shared.answering.types import Exchange
from shared.tracing import span

if TYPE_CHECKING:
    from openai import OpenAI

    from shared.answering.prompt import ChatMessage
    from shared.config import Settings

log = logging.getLogger(__name__)

FOLLOW_UP_WORDS = frozenset(
    "it its it's they them their theirs that those this these he him his she her".split()  # noqa: SIM905
)
"""Words that usually point back at something said before.

Some also occur in standalone questions ("the policy that applies"); a false positive
only adds a few related words to the query, which hybrid retrieval tolerates.
"""

FOLLOW_UP_OPENERS = ("and ", "and,", "what about", "how about", "what of", "also ", "same ")
"""Openings that continue the previous question."""

SHORT_QUESTION_WORDS = 2
"""A question of at most this many words ("Why?", "And 2023?") is a follow-up."""

MAX_CONTEXT_QUESTIONS = 3
"""Most earlier questions the heuristic borrows words from."""

REWRITE_SYSTEM_PROMPT = """\
Rewrite the user's latest question into a standalone search query for searching their \
documents. Use the conversation only to resolve what the question refers to (pronouns, \
"that", omitted subjects, periods or names). Keep every name, number and date. If the \
question is already standalone, return it unchanged. Reply with the query only: no \
quotes, no explanation, no answer."""

# Limits of the model call: a rewrite must not hold the answer up for long.
REWRITE_MAX_TOKENS = 96
REWRITE_TIMEOUT_S = 10.0
REWRITE_MAX_RETRIES = 1
_HISTORY_CHARS = 400  # per earlier question or answer shown to the model


def is_follow_up(question: str) -> bool:
    """Whether ``question`` looks like it depends on an earlier one (heuristic)."""
    lowered = " ".join(question.lower().split())
    tokens = [token.replace("\u2019", "'") for token in words(lowered)]
    if not tokens:
        return False
    return (
        lowered.startswith(FOLLOW_UP_OPENERS)
        or len(tokens) <= SHORT_QUESTION_WORDS
        or any(token in FOLLOW_UP_WORDS for token in tokens)
    )


def heuristic_rewrite(question: str, history: Sequence[Exchange]) -> str:
    """Rewrite offline: append earlier questions' content words to a follow-up.

    The words come from the most recent earlier questions, walking back until one
    that is not itself a follow-up (at most :data:`MAX_CONTEXT_QUESTIONS`), so a
    chain like "revenue in Q3?" -> "and Q4?" -> "why?" keeps its subject.

    Args:
        question: The new question.
        history: Earlier exchanges of the session, oldest first.

    Returns:
        ``question`` unchanged if there is no history or it looks standalone, else
        ``question`` followed by the borrowed words.
    """
    question = question.strip()
    if not history or not is_follow_up(question):
        return question
    have = {normalize_term(word) for word in content_words(question)}
    borrowed: list[str] = []
    for exchange in list(reversed(history))[:MAX_CONTEXT_QUESTIONS]:
        # Earlier questions' words first come from the nearest one, in its word order.
        for word in content_words(exchange.question):
            term = normalize_term(word)
            if term not in have:
                have.add(term)
                borrowed.append(word)
        if not is_follow_up(exchange.question):
            break
    return f"{question} {' '.join(borrowed)}" if borrowed else question


def _conversation(question: str, history: Sequence[Exchange]) -> str:
    lines = []
    for exchange in list(history)[-MAX_CONTEXT_QUESTIONS:]:
        answer = re.sub(r"\s*\[\d+(?:\s*,\s*\d+)*\]", "", exchange.answer)
        lines.append(f"User: {clip(' '.join(exchange.question.split()), _HISTORY_CHARS)}")
        lines.append(f"Assistant: {clip(' '.join(answer.split()), _HISTORY_CHARS)}")
    return "Conversation:\n" + "\n".join(lines) + f"\n\nLatest question: {question}"


def _clean_query(text: str, question: str) -> str | None:
    """The model's query, or None if it does not look like one."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    query = re.sub(r"^(standalone )?(search )?query:\s*", "", lines[0], flags=re.IGNORECASE)
    query = query.strip().strip("\"'“”`").strip()
    # A long reply is an answer or an explanation, not a query.
    if not query or len(query) > max(300, 4 * len(question)):
        return None
    return query


def rewrite_question(
    question: str,
    history: Sequence[Exchange],
    *,
    settings: Settings,
    client: OpenAI | None = None,
    model: str | None = None,
) -> str:
    """Return a standalone search query for ``question`` given the session ``history``.

    Without history the question is returned as is (no model call). With history and
    OpenAI configured (``OPENAI_API_KEY``, or ``client`` given), one short
    non-streaming chat completion rewrites it; any failure of that call falls back to
    :func:`heuristic_rewrite`, which is also what runs offline.

    Args:
        question: The new question.
        history: Earlier exchanges of the session, oldest first.
        settings: This instance's settings (the OpenAI configuration).
        client: An ``openai.OpenAI`` client; defaults to the process's shared one.
        model: The chat model; defaults to ``OPENAI_MODEL``.
    """
    question = question.strip()
    if not history or not question:
        return question
    from shared.answering.generators import (
        GenerationError,
        complete_chat,
        get_openai_client,
        openai_configured,
        openai_model,
    )

    if client is None and not openai_configured(settings):
        return heuristic_rewrite(question, history)
    messages: list[ChatMessage] = [
        {"role": "system", "content": REWRITE_SYSTEM_PROMPT},
        {"role": "user", "content": _conversation(question, history)},
    ]
    try:
        openai_client = client if client is not None else get_openai_client(settings)
        with span("ragline.rewrite.model"):
            completion = complete_chat(
                openai_client,
                model or openai_model(settings),
                messages,
                max_tokens=REWRITE_MAX_TOKENS,
                temperature=0.0,
                timeout=REWRITE_TIMEOUT_S,
                max_retries=REWRITE_MAX_RETRIES,
            )
    except GenerationError as error:
        log.warning("query rewrite failed, using the heuristic: %s", error)
        return heuristic_rewrite(question, history)
    query = _clean_query(completion.text, question)
    if query is None:
        log.warning("query rewrite returned no usable query, using the heuristic")
        return heuristic_rewrite(question, history)
    return query
