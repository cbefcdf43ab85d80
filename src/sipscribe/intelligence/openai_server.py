"""An OpenAI-compatible chat endpoint over any ``LlmBackend`` (the embedded model, usually).

``create_openai_app(backend)`` serves ``POST /v1/chat/completions`` and ``GET /v1/models``
in OpenAI's wire format, so tools that speak that API (and sipscribe's own
``OpenAICompatibleBackend``) can use the embedded llama.cpp model. It honours
``response_format``: ``{"type": "json_schema", "json_schema": {"schema": …}}`` and
llama.cpp's ``{"type": "json_object", "schema": …}`` constrain the reply to the schema,
``{"type": "json_object"}`` to any JSON object. Streaming, tools and ``n > 1`` are
refused with a 400 rather than ignored.

Run it on its own with ``python -m sipscribe.intelligence.openai_server --port 8081``
(the model is assembled from the PyPI parts as for the analyzer).
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sipscribe.intelligence.llm import (
    BackendUnavailable,
    ChatRequest,
    ChatRequestError,
    ContextOverflow,
    LlmBackend,
    LlmError,
)

DEFAULT_MAX_TOKENS = 512


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
    )


def parse_chat_body(body: Any) -> ChatRequest:
    """An OpenAI ``/chat/completions`` body as a ``ChatRequest``; raises ``ChatRequestError``."""
    if not isinstance(body, dict):
        raise ChatRequestError("the request body must be a JSON object")
    if body.get("stream"):
        raise ChatRequestError("stream: streaming is not supported by this server")
    if body.get("tools") or body.get("functions"):
        raise ChatRequestError("tools: tool calls are not supported by this server")
    if body.get("n", 1) != 1:
        raise ChatRequestError("n: only one choice per request is supported")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError("messages: a non-empty list of messages is required")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise ChatRequestError("max_tokens: must be an integer")
    temperature = body.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool):
        raise ChatRequestError("temperature: must be a number")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ChatRequestError("seed: must be an integer")
    schema, json_object = _response_format(body.get("response_format"))
    return ChatRequest.of(
        messages,
        max_tokens=max_tokens,
        temperature=float(temperature),
        json_schema=schema,
        json_object=json_object,
        seed=seed,
    )


def _response_format(value: Any) -> tuple[dict[str, Any] | None, bool]:
    if value is None:
        return None, False
    if not isinstance(value, dict):
        raise ChatRequestError("response_format: must be an object")
    kind = value.get("type")
    if kind == "text":
        return None, False
    if kind == "json_object":
        schema = value.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise ChatRequestError("response_format.schema: must be an object")
        return schema, True
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ChatRequestError("response_format.json_schema.schema: must be an object")
        return schema, True
    raise ChatRequestError(
        f"response_format.type: {kind!r} is not one of text, json_object, json_schema"
    )


def create_openai_app(backend: LlmBackend) -> FastAPI:
    """A FastAPI app serving ``backend`` in OpenAI's chat-completions format."""
    app = FastAPI(title="sipscribe OpenAI-compatible LLM endpoint", docs_url=None, redoc_url=None)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": backend.model_name, "object": "model", "owned_by": "sipscribe"},
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the request body is not valid JSON", "invalid_request_error")
        try:
            chat = parse_chat_body(body)
        except ChatRequestError as exc:
            return _error(400, str(exc), "invalid_request_error")
        try:
            completion = await backend.complete(chat)
        except ContextOverflow as exc:
            return _error(400, str(exc), "invalid_request_error", "context_length_exceeded")
        except BackendUnavailable as exc:
            return _error(503, str(exc), "server_error")
        except LlmError as exc:
            return _error(500, str(exc), "server_error")
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": completion.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": completion.text},
                        "finish_reason": completion.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "total_tokens": completion.prompt_tokens + completion.completion_tokens,
                },
            }
        )

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from sipscribe.config import load_settings
    from sipscribe.intelligence.llm import build_backend

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--config", help="sipscribe TOML settings file")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    backend = build_backend(settings)
    if backend is None:
        raise SystemExit("llm_backend is 'none': nothing to serve")
    uvicorn.run(create_openai_app(backend), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
