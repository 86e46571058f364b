"""The faster token estimate, truncation and prompt building give exactly the old results.

``answer_prompt_reference`` is the prompt module as it was before (each passage
estimated twice, piece by piece in Python); the product's must agree with it on
every input: random strings over an alphabet chosen to hit every rule (letters,
digits, Unicode whitespace and digits, marks, emoji, lone and repeated spaces),
random prose and tables, and whole prompts with truncation and history, with the
default estimator and with injected ones.
"""

from __future__ import annotations

import random
import re

import pytest

from shared.answering import prompt
from shared.answering.types import Exchange, GenerationRequest, Passage
from shared.tokens import utf8_bound
from tests.unit import answer_prompt_reference as reference

ALPHABET = [
    *"abcXYZ09 .,;:!?()[]$%_-'\"",
    *"  \t\n\r\x0b\x0c\x1c\x1f\x00\x7f",
    "é", "ß", "中", "Ω", "ǅ", "²", "½", "\u0301",  # letters, numbers that are not digits, a mark
    "\u00a0", "\u2003", "\u2028", "\u3000", "\x85",  # non-ASCII whitespace
    "٣", "\uff11", "\u07c0",  # non-ASCII decimal digits
    "\u2019", "—", "•", "€", "😀",
]  # fmt: skip

WORDS = [
    "revenue",
    "increased",
    "the",
    "12.5%",
    "$4,210",
    "(3)",
    "Apple\u2019s",
    "naïve",
    "2024-03-31",
]


def random_text(rng: random.Random, length: int) -> str:
    pool = rng.sample(ALPHABET, rng.randint(1, len(ALPHABET)))
    return "".join(rng.choice(pool) for _ in range(length))


def random_prose(rng: random.Random, count: int) -> str:
    separators = [" "] * 12 + ["\n", "  ", "\n\n", " \n", "\t", "\u00a0"]
    return "".join(rng.choice(WORDS) + rng.choice(separators) for _ in range(count)).strip()


@pytest.mark.parametrize("seed", range(4))
def test_estimate_matches_the_reference_on_random_strings(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(5000):
        text = random_text(rng, rng.randint(0, 40))
        assert prompt.estimate_tokens(text) == reference.estimate_tokens(text), repr(text)


@pytest.mark.parametrize("seed", range(4))
def test_estimate_matches_the_reference_on_prose_and_tables(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        text = random_prose(rng, rng.randint(1, 400))
        assert prompt.estimate_tokens(text) == reference.estimate_tokens(text)


def test_junctions_that_split_pieces_are_detected() -> None:
    # The sum of two estimates is used only when no piece spans the junction.
    rng = random.Random(7)
    for _ in range(20000):
        left, right = random_text(rng, rng.randint(0, 6)), random_text(rng, rng.randint(0, 6))
        tokens = prompt._joined_tokens(
            [(left, prompt.estimate_tokens(left)), (right, prompt.estimate_tokens(right))],
            prompt.estimate_tokens,
        )
        assert tokens == reference.estimate_tokens(left + right), (left, right)


@pytest.mark.parametrize("seed", range(3))
def test_truncation_matches_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        text = (
            random_prose(rng, rng.randint(1, 200))
            if rng.random() < 0.7
            else random_text(rng, rng.randint(0, 200))
        )
        budget = rng.randint(-2, 300)
        assert prompt.truncate_to_tokens(text, budget) == reference.truncate_to_tokens(
            text, budget
        ), (text, budget)


def _passage(rng: random.Random, number: int) -> Passage:
    text = (
        random_prose(rng, rng.randint(1, 900))
        if rng.random() < 0.8
        else random_text(rng, rng.randint(1, 3000))
    )
    heading = rng.choice([(), ("Part I",), ("Item 2 ", "Liquidity\n"), ("١٢",)])
    return Passage(
        chunk_id=number,
        document_id=f"doc-{number}",
        version_id=f"ver-{number}",
        kb_id="kb",
        filename=rng.choice(["10q.pdf", "notes 2024.pdf", "rapport_été.pdf"]),
        title=rng.choice([None, "Quarterly report", "12"]),
        text=text,
        page_start=rng.choice([None, 3]),
        page_end=rng.choice([None, 3, 5]),
        char_start=0,
        char_end=len(text),
        heading_path=heading,
        score=1.0,
    )


def _request(rng: random.Random) -> GenerationRequest:
    passages = [_passage(rng, n) for n in range(1, rng.randint(0, 10) + 1)]
    history = [
        Exchange(random_prose(rng, rng.randint(1, 40)), random_prose(rng, rng.randint(1, 300)))
        for _ in range(rng.randint(0, 4))
    ]
    question = rng.choice(["What happened?", "Revenue 2024?  ", random_prose(rng, 30)])
    return GenerationRequest(question, passages, history)


def _not_additive(text: str) -> int:
    # Longer texts cost disproportionately more: only the final check keeps the budget.
    return len(re.findall(r"\S+", text)) + len(text) // 50


@pytest.mark.parametrize("estimator", [None, utf8_bound, len, _not_additive])
@pytest.mark.parametrize("seed", range(3))
def test_prompts_match_the_reference(estimator: prompt.TokenEstimator | None, seed: int) -> None:
    rng = random.Random(seed)
    kwargs = {} if estimator is None else {"estimator": estimator}
    built = 0
    for _ in range(60):
        request = _request(rng)
        budget = rng.choice([300, 800, 1500, 4000, 12000])
        try:
            expected = reference.build_prompt(
                request, max_context_tokens=budget, max_history=3, **kwargs
            )
        except reference.LimitExceededError:
            with pytest.raises(prompt.LimitExceededError):
                prompt.build_prompt(request, max_context_tokens=budget, max_history=3, **kwargs)
            continue
        got = prompt.build_prompt(request, max_context_tokens=budget, max_history=3, **kwargs)
        assert got.messages == expected.messages
        assert (got.included, got.truncated, got.history, got.tokens, got.budget) == (
            expected.included,
            expected.truncated,
            expected.history,
            expected.tokens,
            expected.budget,
        )
        built += 1
    assert built > 20
