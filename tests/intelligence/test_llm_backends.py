"""``sipscribe.intelligence.llm`` and ``llama``: requests, the HTTP backend, the worker process.

The HTTP backend's error mapping is driven through ``httpx.MockTransport``; its real
conversation with a server is in ``test_llm_openai_server.py``. The llama worker tests
use the real embedded model.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from sipscribe.config import Settings
from sipscribe.intelligence.llama import LlamaConfig, LlamaProcessBackend
from sipscribe.intelligence.llm import (
    BackendUnavailable,
    ChatCompletion,
    ChatMessage,
    ChatRequest,
    ChatRequestError,
    ContextOverflow,
    LlmError,
    LlmSettings,
    OpenAICompatibleBackend,
    build_backend,
)
from sipscribe.intelligence.models import GGUF_MAGIC, ModelAssemblyError

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


def request(**options: Any) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": "Is the sky blue?"}], **options)


# -- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "options", "message"),
    [
        ([], {}, "a chat request needs at least one message"),
        (
            [{"role": "robot", "content": "x"}],
            {},
            "messages[0].role is 'robot', not one of system, user, assistant",
        ),
        ([{"role": "user", "content": 5}], {}, "messages[0].content must be a string"),
        (["hi"], {}, "messages[0] is str, not an object"),
        (
            [{"role": "user", "content": "x"}],
            {"max_tokens": 0},
            "max_tokens is 0, not between 1 and 4096",
        ),
        (
            [{"role": "user", "content": "x"}],
            {"temperature": 3.0},
            "temperature is 3.0, not between 0 and 2",
        ),
        (
            [{"role": "user", "content": "x"}] * 65,
            {},
            "a chat request has 65 messages; the limit is 64",
        ),
    ],
)
def test_bad_requests(messages: list, options: dict, message: str) -> None:
    with pytest.raises(ChatRequestError) as excinfo:
        ChatRequest.of(messages, **options)
    assert str(excinfo.value) == message


def test_requests_and_completions_cross_a_process_boundary_intact() -> None:
    original = request(max_tokens=20, temperature=0.5, json_schema=SCHEMA, seed=7)
    assert ChatRequest.from_dict(json.loads(json.dumps(original.to_dict()))) == original
    done = ChatCompletion("{}", "m", "length", 10, 20, 1.5)
    assert ChatCompletion.from_dict(json.loads(json.dumps(done.to_dict()))) == done


# -- the OpenAI-compatible backend ---------------------------------------------------------


def mock_backend(handler: Any, **options: Any) -> OpenAICompatibleBackend:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAICompatibleBackend(
        "http://llm.test/v1", "qwen", api_key="sk-test", client=client, **options
    )


def completion_body(content: str = '{"answer": "yes"}', **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "qwen-served",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
        **extra,
    }


async def test_openai_backend_sends_the_schema_and_reads_the_reply() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=completion_body())

    backend = mock_backend(handler)
    done = await backend.complete(request(json_schema=SCHEMA, max_tokens=50))
    assert (done.text, done.model, done.finish_reason) == (
        '{"answer": "yes"}',
        "qwen-served",
        "stop",
    )
    assert (done.prompt_tokens, done.completion_tokens) == (12, 4)
    (sent,) = seen
    assert str(sent.url) == "http://llm.test/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert json.loads(sent.content) == {
        "model": "qwen",
        "messages": [{"role": "user", "content": "Is the sky blue?"}],
        "max_tokens": 50,
        "temperature": 0.0,
        "seed": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "strict": True, "schema": SCHEMA},
        },
    }
    await backend.aclose()


def test_openai_payload_variants() -> None:
    backend = OpenAICompatibleBackend("https://api.example/v1/", "m", strict_schema=False)
    assert backend.url == "https://api.example/v1/chat/completions"
    assert backend.payload(request(json_object=True, seed=None)) == {
        "model": "m",
        "messages": [{"role": "user", "content": "Is the sky blue?"}],
        "max_tokens": 512,
        "temperature": 0.0,
        "response_format": {"type": "json_object"},
    }
    loose = backend.payload(request(json_schema=SCHEMA))["response_format"]["json_schema"]
    assert loose["strict"] is False


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 4096 tokens",
                    "code": "context_length_exceeded",
                }
            },
            ContextOverflow,
            "http://llm.test/v1/chat/completions: This model's maximum context length is 4096 "
            "tokens",
        ),
        (
            401,
            {"error": {"message": "Incorrect API key provided"}},
            LlmError,
            "http://llm.test/v1/chat/completions answered 401: Incorrect API key provided",
        ),
        (
            404,
            {"detail": "Not Found"},
            LlmError,
            "http://llm.test/v1/chat/completions answered 404: Not Found",
        ),
        (
            500,
            "upstream exploded",
            LlmError,
            "http://llm.test/v1/chat/completions answered 500: upstream exploded",
        ),
        (
            200,
            {"choices": []},
            LlmError,
            "http://llm.test/v1/chat/completions sent a reply that is not a chat completion: "
            "list index out of range",
        ),
        (
            200,
            {"choices": [{"message": {"content": None}}]},
            LlmError,
            "http://llm.test/v1/chat/completions sent a reply that is not a chat completion: "
            "message.content is not a string",
        ),
    ],
)
async def test_openai_backend_errors(status: int, body: Any, error: type, message: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with pytest.raises(error) as excinfo:
        await mock_backend(handler).complete(request())
    assert type(excinfo.value) is error
    assert str(excinfo.value) == message


async def test_openai_backend_unreachable_and_slow() -> None:
    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    with pytest.raises(BackendUnavailable, match=r"cannot be reached: connection refused"):
        await mock_backend(refuse).complete(request())

    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    with pytest.raises(
        LlmError,
        match=r"^http://llm.test/v1/chat/completions did not answer "
        r"within 7 s$",
    ):
        await mock_backend(slow, timeout_s=7).complete(request())


def test_openai_backend_configuration_errors() -> None:
    with pytest.raises(ValueError, match=r"LLM base URL 'llm.test' is not an http"):
        OpenAICompatibleBackend("llm.test", "m")
    with pytest.raises(ValueError, match=r"needs a model name"):
        OpenAICompatibleBackend("http://llm.test/v1", "")


# -- settings ------------------------------------------------------------------------------


class FakeSettings:
    """Settings as they will be once ``config.Settings`` declares the ``llm_*`` fields."""

    def __init__(self, **values: Any) -> None:
        self.resolved_model_cache_dir = Path("/tmp/models")
        for key, value in values.items():
            setattr(self, f"llm_{key}", value)


def test_llm_settings_defaults_and_overrides() -> None:
    assert LlmSettings.of(Settings()) == LlmSettings(cache_dir=Settings().resolved_model_cache_dir)
    cfg = LlmSettings.of(
        FakeSettings(
            backend="OpenAI",
            threads=2,
            chunk_tokens=900,
            base_url="http://x/v1",
            model_path="~/m.gguf",
        )
    )
    assert (cfg.backend, cfg.threads, cfg.chunk_tokens, cfg.base_url) == (
        "openai",
        2,
        900,
        "http://x/v1",
    )
    assert cfg.model_path == Path("~/m.gguf").expanduser()


def test_build_backend_choices(tmp_path: Path) -> None:
    assert build_backend(FakeSettings(backend="none")) is None
    with pytest.raises(ValueError, match=r"llm_backend 'openai' needs llm_base_url"):
        build_backend(FakeSettings(backend="openai"))
    with pytest.raises(ValueError, match=r"llm_backend 'gpt' is not one of llama, openai, none"):
        build_backend(FakeSettings(backend="gpt"))
    remote = build_backend(
        FakeSettings(backend="openai", base_url="http://h/v1", model="q", context_tokens=32768)
    )
    assert isinstance(remote, OpenAICompatibleBackend)
    assert (remote.model_name, remote.context_tokens) == ("q", 32768)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(GGUF_MAGIC + b"\0" * 8)
    local = build_backend(FakeSettings(model_path=str(gguf), nice=5, threads=1))
    assert isinstance(local, LlamaProcessBackend)  # not started: the worker starts on use
    assert local.config == LlamaConfig(model_path=gguf, nice=5, threads=1)
    assert local.pid is None
    with pytest.raises(ModelAssemblyError):
        build_backend(FakeSettings(model_path=str(tmp_path / "missing.gguf")))


# -- the llama worker process (real model) -------------------------------------------------


@pytest.mark.slow
async def test_worker_runs_at_low_priority_and_answers_in_json(llama_backend: Any) -> None:
    pid = llama_backend.pid
    assert pid is not None
    assert os.getpriority(os.PRIO_PROCESS, pid) >= llama_backend.config.nice
    assert llama_backend.info["nice"] >= 10
    done = await llama_backend.complete(request(json_schema=SCHEMA, max_tokens=16))
    assert json.loads(done.text) in ({"answer": "yes"}, {"answer": "no"})
    assert done.finish_reason == "stop"
    assert done.prompt_tokens > 5
    assert done.model == "qwen2.5-coder-1.5b-q4"


@pytest.mark.slow
async def test_worker_refuses_a_prompt_over_the_context(llama_backend: Any) -> None:
    huge = ChatRequest(
        messages=(ChatMessage("user", "word " * 5000),), max_tokens=16, json_object=True
    )
    with pytest.raises(ContextOverflow, match=r"exceed the context window of 4096"):
        await llama_backend.complete(huge)


@pytest.mark.slow
async def test_worker_is_restarted_after_it_dies(model_path: Path) -> None:
    backend = LlamaProcessBackend(LlamaConfig(model_path=model_path), request_timeout_s=120)
    try:
        await backend.start()
        first = backend.pid
        assert first is not None
        os.kill(first, 9)
        for _ in range(200):  # the reader notices the exit (bounded: 10 s)
            if backend.pid is None:
                break
            await asyncio.sleep(0.05)
        assert backend.pid is None
        done = await backend.complete(request(json_schema=SCHEMA, max_tokens=16))
        assert json.loads(done.text)["answer"] in ("yes", "no")
        assert backend.pid not in (None, first)
    finally:
        await backend.aclose()
    with pytest.raises(BackendUnavailable, match=r"the llama backend is closed"):
        backend.start_sync()


async def test_a_worker_that_cannot_load_says_why(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(GGUF_MAGIC + b"\0" * 64)
    backend = LlamaProcessBackend(LlamaConfig(model_path=fake), start_timeout_s=60)
    with pytest.raises(BackendUnavailable, match=r"^the llama worker could not start: "):
        await backend.complete(request())
    await backend.aclose()


@pytest.mark.slow
async def test_worker_ends_when_its_parent_is_killed(model_path: Path) -> None:
    script = (
        "import sys, os\n"
        "from pathlib import Path\n"
        "from sipscribe.intelligence.llama import LlamaConfig, LlamaProcessBackend\n"
        "b = LlamaProcessBackend(LlamaConfig(model_path=Path(sys.argv[1])))\n"
        "b.start_sync()\n"
        "print(b.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(model_path), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(parent.communicate(), timeout=120)
    worker = int(out.decode().strip())
    for _ in range(100):  # bounded: 10 s
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.1)
    else:
        os.kill(worker, 9)
        pytest.fail(f"worker {worker} outlived its parent by 10 s")
