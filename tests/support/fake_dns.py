"""A resolver for the SSRF guard with fixed answers, recording what it was asked.

Tests inject it so a refusal is decided without any real lookup or connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class FakeDns:
    """Fixed answers by host name; a name not listed resolves to nothing."""

    def __init__(self, answers: Mapping[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return self.answers.get(host, [])
