"""``sipscribe.intelligence.openai_server``, and the OpenAI-compatible backend against it.

The request parsing and error mapping run in-process over a scripted backend. The
end-to-end tests start the server with uvicorn on 127.0.0.1 (a free port), serving the
real embedded model, and talk to it with ``OpenAICompatibleBackend``: the same path an
operator's Ollama, vLLM or llama.cpp server would take.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn

from sipscribe.intelligence.analyzer import Analyzer
from sipscribe.intelligence.llm import (
    BackendUnavailable,
    ChatRequestError,
    ContextOverflow,
    LlmError,
    OpenAICompatibleBackend,
)
from sipscribe.intelligence.openai_server import create_openai_app, parse_chat_body
from sipscribe.intelligence.quality import score
from sipscribe.intelligence.schema import MODEL_SCHEMA, RESULT_SCHEMA

from .llm_helpers import ScriptedBackend, load_case

MESSAGES = [{"role": "user", "content": "hi"}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "open": {"type": "boolean"}},
    "required": ["city", "open"],
    "additionalProperties": False,
}


def test_parse_plain_body_with_defaults() -> None:
    chat = parse_chat_body({"model": "x", "messages": MESSAGES})
    assert (chat.max_tokens, chat.temperature, chat.json_schema, chat.json_object) == (
        512,
        1.0,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("response_format", "schema", "json_object"),
    [
        ({"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}}, SCHEMA, True),
        ({"type": "json_object", "schema": SCHEMA}, SCHEMA, True),
        ({"type": "json_object"}, None, True),
        ({"type": "text"}, None, False),
    ],
)
def test_parse_response_formats(response_format: dict, schema: Any, json_object: bool) -> None:
    chat = parse_chat_body(
        {"messages": MESSAGES, "response_format": response_format, "max_completion_tokens": 9}
    )
    assert (chat.json_schema, chat.json_object, chat.max_tokens) == (schema, json_object, 9)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the request body must be a JSON object"),
        (
            {"messages": MESSAGES, "stream": True},
            "stream: streaming is not supported by this server",
        ),
        (
            {"messages": MESSAGES, "tools": [{}]},
            "tools: tool calls are not supported by this server",
        ),
        ({"messages": MESSAGES, "n": 2}, "n: only one choice per request is supported"),
        ({"messages": []}, "messages: a non-empty list of messages is required"),
        ({"messages": MESSAGES, "max_tokens": "many"}, "max_tokens: must be an integer"),
        ({"messages": MESSAGES, "temperature": True}, "temperature: must be a number"),
        ({"messages": MESSAGES, "seed": 1.5}, "seed: must be an integer"),
        ({"messages": MESSAGES, "response_format": "json"}, "response_format: must be an object"),
        (
            {"messages": MESSAGES, "response_format": {"type": "xml"}},
            "response_format.type: 'xml' is not one of text, json_object, json_schema",
        ),
        (
            {"messages": MESSAGES, "response_format": {"type": "json_schema"}},
            "response_format.json_schema.schema: must be an object",
        ),
        (
            {"messages": [{"role": "bot", "content": "x"}]},
            "messages[0].role is 'bot', not one of system, user, assistant",
        ),
    ],
)
def test_parse_refuses_what_it_cannot_honour(body: Any, message: str) -> None:
    with pytest.raises(ChatRequestError) as excinfo:
        parse_chat_body(body)
    assert str(excinfo.value) == message


async def post(app: Any, body: Any, *, raw: bytes | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://llm.test") as client:
        if raw is not None:
            return await client.post("/v1/chat/completions", content=raw)
        return await client.post("/v1/chat/completions", json=body)


async def test_completion_in_openai_format_over_a_scripted_backend() -> None:
    backend = ScriptedBackend(['{"city": "Oslo", "open": true}'], model_name="m1")
    app = create_openai_app(backend)
    body = {
        "model": "whatever",
        "messages": MESSAGES,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
    }
    response = await post(app, body)
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "m1"
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"city": "Oslo", "open": true}'},
            "finish_reason": "stop",
        }
    ]
    assert data["usage"] == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    assert backend.requests[0].json_schema == SCHEMA
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://llm.test"
    ) as client:
        models = (await client.get("/v1/models")).json()
    assert models["data"][0]["id"] == "m1"


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (
            ContextOverflow("prompt too long"),
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (BackendUnavailable("worker gone"), 503, "server_error", None),
        (LlmError("it broke"), 500, "server_error", None),
    ],
)
async def test_backend_errors_in_openai_format(
    error: Exception, status: int, kind: str, code: str | None
) -> None:
    response = await post(create_openai_app(ScriptedBackend([error])), {"messages": MESSAGES})
    assert response.status_code == status
    assert response.json() == {
        "error": {"message": str(error), "type": kind, "param": None, "code": code}
    }


async def test_bad_json_and_bad_requests_are_400() -> None:
    app = create_openai_app(ScriptedBackend())
    response = await post(app, None, raw=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the request body is not valid JSON"
    response = await post(app, {"messages": MESSAGES, "stream": True})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# -- end to end: uvicorn on loopback, the real model, the HTTP backend ---------------------


@pytest.fixture
async def served(llama_backend: Any) -> AsyncIterator[str]:
    """The embedded model behind the OpenAI-compatible app, on 127.0.0.1:<free port>."""
    config = uvicorn.Config(
        create_openai_app(llama_backend),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):  # bounded: 10 s
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start within 10 s"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


@pytest.mark.slow
async def test_openai_backend_gets_schema_constrained_json_from_the_served_model(
    served: str,
) -> None:
    backend = OpenAICompatibleBackend(served, "qwen", timeout_s=300)
    try:
        chat_schema = {
            "messages": [
                {
                    "role": "user",
                    "content": "Is a bakery in Oslo open at 3 in the morning? "
                    "Answer with the city and whether it is open.",
                }
            ]
        }
        from sipscribe.intelligence.llm import ChatRequest

        done = await backend.complete(
            ChatRequest.of(chat_schema["messages"], json_schema=SCHEMA, max_tokens=40)
        )
        data = json.loads(done.text)
        jsonschema.validate(data, SCHEMA)
        assert done.model == "qwen2.5-coder-1.5b-q4"
        assert done.completion_tokens > 0
    finally:
        await backend.aclose()


@pytest.mark.slow
async def test_analyzer_over_the_openai_backend(served: str) -> None:
    case = load_case("short_call")
    backend = OpenAICompatibleBackend(served, "qwen", timeout_s=300, context_tokens=4096)
    try:
        result = await Analyzer(backend).summarize(case.transcript(), case.instructions)
    finally:
        await backend.aclose()
    jsonschema.validate(result, RESULT_SCHEMA)
    assert result["model"] == "qwen2.5-coder-1.5b-q4"
    assert result["callHeadline"]
    assert score(case, result).invented_numbers == ()
    assert MODEL_SCHEMA["required"][0] == "callHeadline"
