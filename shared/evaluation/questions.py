"""Question sets: a CSV of questions with expected source documents and references.

The format (``tests/data/sec10q_eval.csv``): columns ``question``, ``expected_sources``
(file-name globs separated by ``;``), ``reference_answer`` (optional) and ``tags``
(optional, ``;``-separated). The old tool's format (``questions_mini.csv``: columns
``Question``, ``Source Docs``, ``Answer``, ``Question Type``, ``Source Chunk Type``) is
read too: its source docs become the globs, its answer the reference, its type columns
the tags.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.errors import InvalidInputError

MAX_QUESTIONS = 200
MAX_QUESTION_CHARS = 4000
MAX_REFERENCE_CHARS = 20_000
MAX_GLOBS = 50
MAX_CSV_BYTES = 4 * 1024 * 1024

# The old tool's columns, and what they mean here.
_OLD_COLUMNS = {
    "question": "question",
    "source docs": "expected_sources",
    "answer": "reference_answer",
}
_OLD_TAG_COLUMNS = ("question type", "source chunk type")


@dataclass(frozen=True)
class EvalQuestion:
    """One question of a set.

    Attributes:
        question: The question asked.
        expected_sources: File-name globs of the documents that answer it (empty: the
            knowledge base should not be able to answer it).
        reference_answer: A correct answer, if given.
        tags: Labels for grouping results.
    """

    question: str
    expected_sources: tuple[str, ...] = ()
    reference_answer: str | None = None
    tags: tuple[str, ...] = ()


def _split(value: str | None, separators: str = ";") -> tuple[str, ...]:
    text = value or ""
    for separator in separators[1:]:
        text = text.replace(separator, separators[0])
    return tuple(part.strip() for part in text.split(separators[0]) if part.strip())


def _invalid(row: int, message: str) -> InvalidInputError:
    return InvalidInputError(f"question {row}: {message}", code="invalid_questions")


def make_question(row: int, fields: Mapping[str, str | None], old_format: bool) -> EvalQuestion:
    """One validated question from a row's fields (``row`` counts from 1, for errors).

    Args:
        row: The question's number in the set.
        fields: ``question``, ``expected_sources``, ``reference_answer``, ``tags``.
        old_format: Sources may also be separated by commas (the old tool's files).
    """
    question = (fields.get("question") or "").strip()
    if not question:
        raise _invalid(row, "the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise _invalid(row, f"longer than {MAX_QUESTION_CHARS:,} characters")
    globs = _split(fields.get("expected_sources"), ";," if old_format else ";")
    if len(globs) > MAX_GLOBS:
        raise _invalid(row, f"more than {MAX_GLOBS} expected sources")
    reference = (fields.get("reference_answer") or "").strip() or None
    if reference is not None and len(reference) > MAX_REFERENCE_CHARS:
        raise _invalid(row, f"reference answer longer than {MAX_REFERENCE_CHARS:,} characters")
    return EvalQuestion(
        question=question,
        expected_sources=globs,
        reference_answer=reference,
        tags=_split(fields.get("tags")),
    )


def _old_row(row: Mapping[str, str | None]) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    lowered = {key.strip().lower(): value for key, value in row.items() if key}
    for column, name in _OLD_COLUMNS.items():
        fields[name] = lowered.get(column)
    fields["tags"] = ";".join(lowered.get(c) or "" for c in _OLD_TAG_COLUMNS)
    return fields


def read_questions(text: str) -> list[EvalQuestion]:
    """Parse a question set in either CSV format.

    Args:
        text: The CSV (a byte-order mark is ignored).

    Raises:
        InvalidInputError: ``invalid_questions``: no ``question`` column, an empty
            question, too many questions, too long.
    """
    if len(text.encode()) > MAX_CSV_BYTES:
        raise InvalidInputError(
            f"a question set may be at most {MAX_CSV_BYTES // 1024 // 1024} MiB",
            code="invalid_questions",
        )
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    columns = {name.strip().lower() for name in reader.fieldnames or () if name}
    if "question" not in columns:
        raise InvalidInputError(
            "the CSV needs a 'question' column (and 'expected_sources', optionally"
            " 'reference_answer' and 'tags'), or the old 'Question', 'Source Docs', 'Answer'",
            code="invalid_questions",
        )
    old_format = "source docs" in columns and "expected_sources" not in columns
    questions: list[EvalQuestion] = []
    for number, row in enumerate(reader, start=1):
        if number > MAX_QUESTIONS:
            raise InvalidInputError(
                f"a question set may have at most {MAX_QUESTIONS} questions",
                code="invalid_questions",
            )
        fields = (
            _old_row(row)
            if old_format
            else {key.strip().lower(): value for key, value in row.items() if key}
        )
        questions.append(make_question(number, fields, old_format))
    if not questions:
        raise InvalidInputError("the question set is empty", code="invalid_questions")
    return questions


def questions_from_json(items: Sequence[Mapping[str, object]]) -> list[EvalQuestion]:
    """Questions given as JSON objects with the CSV's field names (lists for the lists).

    Raises:
        InvalidInputError: ``invalid_questions``, as :func:`read_questions`.
    """
    if not items:
        raise InvalidInputError("the question set is empty", code="invalid_questions")
    if len(items) > MAX_QUESTIONS:
        raise InvalidInputError(
            f"a question set may have at most {MAX_QUESTIONS} questions",
            code="invalid_questions",
        )
    questions = []
    for number, item in enumerate(items, start=1):
        fields: dict[str, str | None] = {}
        for name in ("question", "expected_sources", "reference_answer", "tags"):
            value = item.get(name)
            if isinstance(value, list):
                value = ";".join(str(part) for part in value)
            fields[name] = None if value is None else str(value)
        questions.append(make_question(number, fields, old_format=False))
    return questions
