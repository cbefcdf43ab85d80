"""``POST /v1/llms/completion``: raw access to the server's language model, for tenants.

Chat messages in, text out, optionally constrained to a JSON schema, over the same
model the summaries use (``AppServices.llm_backend``, set by the composition root). The
model answers one request at a time, so waiting requests are capped
(``MAX_WAITING``): past that the route answers 503 at once instead of queueing work a
summary would then wait behind.

Scope: ``llm.use``, its own so a tenant can hand out model access without the right to
write summaries on its calls (and the reverse).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from sipscribe.api.deps import JsonBody, Principal, ServicesDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.schemas import AUTH_ERRORS, Envelope, envelope, error_responses
from sipscribe.intelligence.llm import (
    MAX_MESSAGES,
    MAX_OUTPUT_TOKENS,
    BackendUnavailable,
    ChatRequest,
    ContextOverflow,
    LlmBackend,
    LlmError,
)
from sipscribe.store.keys import Scope

router = APIRouter(prefix="/v1/llms", tags=["llms"])

MAX_MESSAGE_CHARS = 100_000
#: Completions one process accepts at once (one runs, the rest wait for the model).
MAX_WAITING = 4


class LlmMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class LlmCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[LlmMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int = Field(default=512, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    json_schema: dict[str, Any] | None = Field(
        default=None, description="Constrain the reply to this JSON schema"
    )


class LlmUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class LlmCompletionOut(BaseModel):
    text: str
    model: str
    finish_reason: str = Field(description='"stop", or "length" when max_tokens ran out')
    usage: LlmUsage


def backend_of(services: Any) -> LlmBackend:
    backend = getattr(services, "llm_backend", None)
    if backend is None:
        raise ApiError(503, "No language model is configured on this server")
    return backend  # type: ignore[no-any-return]


@router.post(
    "/completion",
    response_model=Envelope[LlmCompletionOut],
    summary="Complete a chat with the server's language model",
    responses=error_responses(400, 415, 503, *AUTH_ERRORS),
)
async def complete(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.LLM_USE))],
    services: ServicesDep,
    _json: Annotated[None, JsonBody],
    body: LlmCompletionRequest,
) -> Envelope[LlmCompletionOut]:
    backend = backend_of(services)
    chat = ChatRequest.of(
        [m.model_dump() for m in body.messages],
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        json_schema=body.json_schema,
    )
    state = request.app.state
    waiting = getattr(state, "llm_waiting", 0)
    if waiting >= MAX_WAITING:
        raise ApiError(503, "The language model is busy; retry shortly")
    state.llm_waiting = waiting + 1
    try:
        completion = await backend.complete(chat)
    except ContextOverflow as exc:
        raise ApiError(400, f"messages: too long for the model ({exc})") from None
    except BackendUnavailable as exc:
        raise ApiError(503, f"The language model is not available: {exc}") from None
    except LlmError as exc:
        raise ApiError(500, f"The language model failed: {exc}") from None
    finally:
        state.llm_waiting -= 1
    data = LlmCompletionOut(
        text=completion.text,
        model=completion.model,
        finish_reason=completion.finish_reason,
        usage=LlmUsage(
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        ),
    )
    return envelope(request, data)
