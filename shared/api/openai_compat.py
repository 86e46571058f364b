"""OpenAI-compatible chat: ``/v1/openai/models`` and ``/v1/openai/chat/completions``.

Chat frontends and SDKs that speak OpenAI's API use Ragline as their backend: a
*model* is a knowledge base the caller can read (its id, or its name), the messages
are the conversation, and the answer is Ragline's grounded answer with its ``[n]``
markers. The checked citations travel in an extension field, ``citations`` (the
structure of ``/v1/ask``'s), on the message (``choices[0].message.citations``) or, when
streaming, on the last chunk's delta; ``ragline`` (``turn_id``, ``session_id``,
``unsupported_citations``) names the stored turn.

The client sends the whole conversation each time (it is stateless), so the earlier
messages are passed to the answer as its history and never stored again: each request
stores one turn, in a session of its own. Sampling options (``temperature``,
``max_tokens``, ...) are accepted and not applied (the answer is Ragline's); what cannot
be honoured (tools, ``n`` > 1, log probabilities, JSON output, non-text content) is a
400. Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.

Authentication is the API's: ``Authorization: Bearer`` with an ID token or an API key
(``rlk_...``, which is what an SDK's ``api_key`` sends).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared.answering.service import Event, Question, collect
from shared.answering.types import Exchange
from shared.api.access import readable_knowledge_bases, require_kb
from shared.api.answer import SSE_HEADERS, question_text, start_answer
from shared.api.http import EVENT_STREAM, Route, json_response, read_json
from shared.auth import Principal
from shared.errors import InvalidInputError, NotFoundError
from shared.knowledge_bases import KnowledgeBase
from shared.runtime import Runtime

MAX_MESSAGES = 200
OWNED_BY = "ragline"
# OpenAI's error ``type`` for each status this API answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
# The request field an error code is about (OpenAI's ``param``).
ERROR_PARAMS = {
    "model_not_found": "model",
    "invalid_messages": "messages",
    "invalid_question": "messages",
    "question_too_long": "messages",
    "unsupported_content": "messages",
}


class TextPart(BaseModel):
    """One part of a message's content; only text parts can be honoured."""

    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message of the conversation (``developer`` counts as ``system``)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk with the usage."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatBody(BaseModel):
    """Body of ``POST /v1/openai/chat/completions`` (OpenAI's request shape).

    Fields OpenAI defines and Ragline does not apply are accepted and ignored; the
    ones whose absence would change the answer's shape are refused by
    :func:`_refuse_unsupported`.
    """

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    user: str | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    response_format: dict[str, Any] | None = None


class ModelCard(BaseModel):
    """One entry of ``GET /v1/openai/models``: a knowledge base as a model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    name: str
    description: str


class ModelList(BaseModel):
    """``GET /v1/openai/models``: OpenAI's list shape."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


def openai_error(status: int, code: str, message: str) -> Response:
    """An error in OpenAI's shape (the routes' ``error_format``).

    A validation error's message starts with the field it is about
    (``messages.0.role: ...``); that field is the error's ``param``.
    """
    param = ERROR_PARAMS.get(code)
    if code == "invalid_request" and ": " in message:
        param = message.split(": ", 1)[0]
    error_type = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return json_response(body, status)


def _created(value: str) -> int:
    try:
        return int(dt.datetime.fromisoformat(str(value)).timestamp())
    except ValueError:
        return 0


def _card(kb: KnowledgeBase, principal: Principal) -> ModelCard:
    return ModelCard(
        id=kb.id,
        created=_created(kb.created_at),
        owned_by=principal.workspace or OWNED_BY,
        name=kb.name,
        description=kb.description,
    )


def get_models(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The knowledge bases the caller can read, as OpenAI models (id: the knowledge base's)."""
    kbs = readable_knowledge_bases(runtime.database, principal)
    return json_response(ModelList(data=[_card(kb, principal) for kb in kbs]).model_dump())


def get_model(runtime: Runtime, request: Request, principal: Principal, model: str) -> Response:
    """One knowledge base as a model, by id or name (404 ``model_not_found`` otherwise)."""
    return json_response(_card(_kb(runtime, principal, model), principal).model_dump())


def _text(message: ChatMessage) -> str:
    """The message's text (text parts joined)."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text":
            raise InvalidInputError(
                f"content parts of type {part.type!r} are not supported; send text",
                code="unsupported_content",
            )
        texts.append(part.text or "")
    return "\n".join(texts)


def _refuse_unsupported(body: ChatBody) -> None:
    """Refuse what would change the response's shape (tools, several choices, ...)."""
    refused = None
    if body.tools or body.functions:
        refused = "tools and functions are not supported"
    elif body.n is not None and body.n != 1:
        refused = "n must be 1"
    elif body.logprobs:
        refused = "logprobs are not supported"
    elif body.response_format and body.response_format.get("type", "text") != "text":
        refused = "only the text response_format is supported"
    if refused:
        raise InvalidInputError(refused, code="unsupported_parameter")


def conversation_of(messages: Sequence[ChatMessage]) -> tuple[str, list[Exchange]]:
    """The question (the last message, a user's) and the exchanges before it.

    System and developer messages are left out: the grounding instructions are
    Ragline's. A user message no assistant answered is kept with an empty answer.

    Raises:
        InvalidInputError: ``invalid_messages`` if the last message is not the user's.
    """
    turns = [message for message in messages if message.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise InvalidInputError(
            "the last message must be the user's question", code="invalid_messages"
        )
    exchanges: list[Exchange] = []
    pending: str | None = None
    for message in turns[:-1]:
        if message.role == "user":
            if pending is not None:
                exchanges.append(Exchange(question=pending, answer=""))
            pending = _text(message)
        else:
            exchanges.append(Exchange(question=pending or "", answer=_text(message)))
            pending = None
    if pending is not None:
        exchanges.append(Exchange(question=pending, answer=""))
    return _text(turns[-1]), exchanges


def _kb(runtime: Runtime, principal: Principal, model: str) -> KnowledgeBase:
    try:
        return require_kb(runtime.database, model, principal)
    except NotFoundError:
        raise NotFoundError(
            f"The model {model!r} does not exist or you do not have access to it.",
            code="model_not_found",
        ) from None


class CompletionUsage(BaseModel):
    """Tokens the answer's generation used (zeros for the extractive answerer)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class RaglineTurn(BaseModel):
    """Extension ``ragline``: the stored turn the answer is."""

    turn_id: str
    session_id: str
    unsupported_citations: int = 0


class AssistantMessage(BaseModel):
    """The answer: text with ``[n]`` markers, and the extension ``citations``."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None
    citations: list[dict[str, Any]] = Field(description="checked citations, as /v1/ask's")


class Choice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    """``POST /v1/openai/chat/completions`` without streaming: a ``chat.completion``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    ragline: RaglineTurn


class ChunkDelta(BaseModel):
    """What a chunk adds: the role (first), text (one per token), citations (last)."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    citations: list[dict[str, Any]] | None = None


class ChunkChoice(BaseModel):
    """The one choice of a chunk."""

    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One ``chat.completion.chunk`` of a streamed answer (``data:`` lines of the SSE)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    ragline: RaglineTurn | None = None


def _usage(done: dict[str, Any]) -> CompletionUsage:
    usage = done.get("usage") or {}
    return CompletionUsage(
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        total_tokens=int(usage.get("total_tokens", 0)),
    )


def _turn(done: dict[str, Any]) -> RaglineTurn:
    return RaglineTurn(
        turn_id=done["turn_id"],
        session_id=done["session_id"],
        unsupported_citations=done.get("unsupported_citations", 0),
    )


def _completion(model: str, done: dict[str, Any]) -> ChatCompletion:
    """A ``chat.completion`` from the answer's ``done`` payload."""
    message = AssistantMessage(content=done["answer"], citations=done["citations"])
    return ChatCompletion(
        id=f"chatcmpl-{done['turn_id']}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=message)],
        usage=_usage(done),
        ragline=_turn(done),
    )


def _sse_data(chunk: ChatCompletionChunk) -> str:
    # Only the fields set (every one the chunk means, ``None`` included): a delta names
    # just what it adds, as OpenAI's do.
    return f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"


def _chunks(model: str, events: Iterator[Event], include_usage: bool) -> Iterator[str]:
    """The answer as ``chat.completion.chunk`` SSE lines, ending with ``data: [DONE]``."""
    created = int(time.time())
    completion_id = "chatcmpl-"

    def chunk(delta: ChunkDelta, finish: Literal["stop"] | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish, logprobs=None)
        return ChatCompletionChunk(
            id=completion_id,
            object="chat.completion.chunk",
            created=created,
            model=model,
            choices=[choice],
        )

    try:
        for event in events:
            if event.name == "start":
                completion_id = f"chatcmpl-{event.data['turn_id']}"
                yield _sse_data(chunk(ChunkDelta(role="assistant", content="")))
            elif event.name == "token":
                yield _sse_data(chunk(ChunkDelta(content=event.data["t"])))
            elif event.name == "done":
                done = event.data
                last = chunk(ChunkDelta(citations=done["citations"]), "stop")
                yield _sse_data(last.model_copy(update={"ragline": _turn(done)}))
                if include_usage:
                    yield _sse_data(
                        ChatCompletionChunk(
                            id=completion_id,
                            object="chat.completion.chunk",
                            created=created,
                            model=model,
                            choices=[],
                            usage=_usage(done),
                        )
                    )
            elif event.name == "error":
                data = event.data
                error = {
                    "message": data["message"],
                    "type": "api_error",
                    "param": None,
                    "code": data["code"],
                }
                # OpenAI's clients raise an APIError for a chunk carrying ``error``.
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
        yield "data: [DONE]\n\n"
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def post_chat_completions(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Answer the conversation's last user message from the knowledge base named as model."""
    body = ChatBody.model_validate(read_json(request))
    _refuse_unsupported(body)
    asked, earlier = conversation_of(body.messages)
    settings = runtime.settings
    question = Question(
        text=question_text(settings, asked),
        kb_ids=[_kb(runtime, principal, body.model).id],
        top_k=settings.answer_top_k,
        min_similarity=settings.answer_min_similarity,
    )
    recent = (
        earlier[-settings.answer_history_exchanges :] if settings.answer_history_exchanges else []
    )
    events = start_answer(runtime, principal, question, conversation=recent)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return Response(
            _chunks(body.model, events, include_usage),
            mimetype="text/event-stream",
            headers=SSE_HEADERS,
        )
    return json_response(_completion(body.model, collect(events)).model_dump())


TAGS = ("openai-compatible",)

ROUTES = [
    Route(
        "GET",
        "/v1/openai/models",
        get_models,
        responses={200: ModelList},
        error_format=openai_error,
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/openai/models/<model>",
        get_model,
        responses={200: ModelCard},
        error_format=openai_error,
        tags=TAGS,
    ),
    Route(
        "POST",
        "/v1/openai/chat/completions",
        post_chat_completions,
        audit="knowledge_base.ask",
        body=ChatBody,
        responses={200: ChatCompletion},
        # With "stream": true in the body: chat.completion.chunk events, then [DONE].
        stream=EVENT_STREAM,
        error_format=openai_error,
        tags=TAGS,
    ),
]
