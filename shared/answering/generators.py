"""Choosing the answer generator: OpenAI chat completions, or the offline extractive one.

:func:`get_generator` picks :class:`~shared.answering.openai_stream.OpenAIGenerator`
when the settings carry an OpenAI API key (``OPENAI_API_KEY``) and
:class:`~shared.answering.extractive.ExtractiveGenerator` otherwise. Both return a
stream (:class:`~shared.answering.types.GenerationStream`) that sends nothing until it
is iterated, yields text deltas whose ``[n]`` markers all point at passages the
generator was given (``stream.included``), and stops at ``close()``.

The parts live in modules of their own: the OpenAI client and its errors
(:mod:`shared.answering.openai_client`), the streaming generator
(:mod:`shared.answering.openai_stream`) and the extractive answerer
(:mod:`shared.answering.extractive`). Their public names are importable from here too.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shared.answering.extractive import (
    EXTRACTIVE_LABEL,
    EXTRACTIVE_MODEL,
    RANK_DECAY,
    ExtractiveGenerator,
    TextStream,
)
from shared.answering.openai_client import (
    DEFAULT_MODEL,
    Completion,
    GenerationError,
    close_openai_clients,
    complete_chat,
    get_openai_client,
    map_openai_error,
    openai_configured,
    openai_model,
)
from shared.answering.openai_stream import OpenAIGenerator, OpenAIStream
from shared.answering.types import GenerationStream, Generator

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = [
    "DEFAULT_MODEL",
    "EXTRACTIVE_LABEL",
    "EXTRACTIVE_MODEL",
    "RANK_DECAY",
    "Completion",
    "ExtractiveGenerator",
    "GenerationError",
    "OpenAIGenerator",
    "OpenAIStream",
    "TextStream",
    "clear_generator_cache",
    "complete_chat",
    "get_generator",
    "get_openai_client",
    "map_openai_error",
    "openai_configured",
    "openai_model",
]

_generator_lock = threading.Lock()
# One generator per configuration that shapes it; an instance's settings do not
# change, so in production this holds one entry.
_generators: dict[tuple[object, ...], Generator] = {}


def _configuration(settings: Settings) -> tuple[object, ...]:
    """What distinguishes one generator from another: the OpenAI client and the prompt."""
    if not openai_configured(settings):
        return ("extractive",)
    return (
        "llm",
        settings.openai_api_key.strip(),
        settings.openai_base_url.strip(),
        openai_model(settings),
        settings.openai_timeout_s,
        settings.openai_max_retries,
        settings.answer_max_tokens,
        settings.answer_temperature,
        settings.answer_context_tokens,
        settings.answer_history_exchanges,
    )


def get_generator(settings: Settings) -> Generator:
    """Return this process's generator for ``settings``: OpenAI with a key, else extractive.

    Args:
        settings: This instance's settings (``runtime.settings``).

    Returns:
        The generator, created once per configuration and reused by every request.
    """
    key = _configuration(settings)
    with _generator_lock:
        generator = _generators.get(key)
        if generator is None:
            generator = OpenAIGenerator(settings) if key[0] == "llm" else ExtractiveGenerator()
            _generators[key] = generator
        return generator


def clear_generator_cache() -> None:
    """Forget the chosen generators and the shared OpenAI clients (for tests)."""
    with _generator_lock:
        _generators.clear()
    close_openai_clients()


# Both stream classes satisfy the protocol; keep mypy checking that they still do.
if TYPE_CHECKING:
    _streams: tuple[type[GenerationStream], ...] = (OpenAIStream, TextStream)
    _generators_checked: tuple[type[Generator], ...] = (OpenAIGenerator, ExtractiveGenerator)
