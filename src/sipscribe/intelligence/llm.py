"""Chat models behind one small Protocol: requests, replies, errors, and the HTTP backend.

The analyzer talks to a language model through ``LlmBackend.complete``: chat messages
in, text out, optionally constrained to a JSON schema. Two backends implement it:

* ``LlamaProcessBackend`` (``llama.py``): the embedded default, llama.cpp in a child
  process at low priority, serving the GGUF model shipped on PyPI (``models.py``);
* ``OpenAICompatibleBackend`` (here): any server speaking OpenAI's
  ``POST /v1/chat/completions`` (Ollama, vLLM, llama.cpp's server, OpenAI itself),
  over httpx. A JSON schema goes as ``response_format: {"type": "json_schema", …}``,
  which those servers turn into constrained decoding.

``build_backend(settings)`` picks one from the settings (read with defaults, see
``LlmSettings``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")

MAX_MESSAGES = 64
MAX_OUTPUT_TOKENS = 4096


class LlmError(RuntimeError):
    """A language model could not answer; the message says which and why."""


class ContextOverflow(LlmError):
    """The prompt plus the requested output do not fit the model's context window."""


class BackendUnavailable(LlmError):
    """The model cannot be reached: server down, worker process gone, model missing."""


class ChatRequestError(ValueError):
    """A chat request that is not well formed (from an API client or a caller)."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str

    @classmethod
    def parse(cls, data: Any, *, where: str = "message") -> ChatMessage:
        if not isinstance(data, Mapping):
            raise ChatRequestError(f"{where} is {type(data).__name__}, not an object")
        role, content = data.get("role"), data.get("content")
        if role not in ROLES:
            raise ChatRequestError(f"{where}.role is {role!r}, not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ChatRequestError(f"{where}.content must be a string")
        return cls(role=role, content=content)

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion. ``json_schema`` constrains the reply to that schema;
    ``json_object`` alone to any JSON object. ``temperature`` 0 is greedy decoding."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int = 512
    temperature: float = 0.0
    json_schema: dict[str, Any] | None = None
    json_object: bool = False
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not self.messages:
            raise ChatRequestError("a chat request needs at least one message")
        if len(self.messages) > MAX_MESSAGES:
            raise ChatRequestError(
                f"a chat request has {len(self.messages)} messages; the limit is {MAX_MESSAGES}"
            )
        if not 1 <= self.max_tokens <= MAX_OUTPUT_TOKENS:
            raise ChatRequestError(
                f"max_tokens is {self.max_tokens}, not between 1 and {MAX_OUTPUT_TOKENS}"
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise ChatRequestError(f"temperature is {self.temperature}, not between 0 and 2")

    @classmethod
    def of(cls, messages: Iterable[ChatMessage | Mapping[str, Any]], **options: Any) -> ChatRequest:
        parsed = tuple(
            m if isinstance(m, ChatMessage) else ChatMessage.parse(m, where=f"messages[{i}]")
            for i, m in enumerate(messages)
        )
        return cls(messages=parsed, **options)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, to cross a process boundary."""
        return {
            "messages": [m.to_dict() for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "json_schema": self.json_schema,
            "json_object": self.json_object,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatRequest:
        return cls.of(
            data["messages"],
            max_tokens=int(data["max_tokens"]),
            temperature=float(data["temperature"]),
            json_schema=data.get("json_schema"),
            json_object=bool(data.get("json_object")),
            seed=data.get("seed"),
        )


@dataclass(frozen=True, slots=True)
class ChatCompletion:
    """A model's reply. ``finish_reason`` is "stop" or "length" (ran out of tokens)."""

    text: str
    model: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatCompletion:
        return cls(
            text=str(data["text"]),
            model=str(data["model"]),
            finish_reason=str(data.get("finish_reason", "stop")),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )


@runtime_checkable
class LlmBackend(Protocol):
    """A chat model. ``context_tokens`` is its context window, for chunk budgets."""

    model_name: str
    context_tokens: int

    async def complete(self, request: ChatRequest) -> ChatCompletion: ...

    async def aclose(self) -> None: ...


# -- OpenAI-compatible HTTP backend ---------------------------------------------------------

_OVERFLOW_HINTS = ("context_length_exceeded", "maximum context length", "context window")


class OpenAICompatibleBackend:
    """``LlmBackend`` over any OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` includes the API prefix, as OpenAI's own clients expect
    (``https://api.openai.com/v1``, ``http://localhost:11434/v1`` for Ollama).
    ``context_tokens`` cannot be asked of the server portably, so it is configured.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        context_tokens: int = 8192,
        strict_schema: bool = True,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"LLM base URL {base_url!r} is not an http(s) URL")
        if not model:
            raise ValueError("an OpenAI-compatible backend needs a model name")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_name = model
        self.context_tokens = context_tokens
        self.strict_schema = strict_schema
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._headers = headers
        self._timeout_s = timeout_s

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body for ``request`` (public for tests and debugging)."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [m.to_dict() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "response",
                    "strict": self.strict_schema,
                    "schema": request.json_schema,
                },
            }
        elif request.json_object:
            body["response_format"] = {"type": "json_object"}
        return body

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        started = time.perf_counter()
        try:
            response = await self._client.post(
                self.url, json=self.payload(request), headers=self._headers
            )
        except httpx.TimeoutException:
            raise LlmError(f"{self.url} did not answer within {self._timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{self.url} cannot be reached: {exc}") from None
        if response.status_code != 200:
            message = _error_message(response)
            if response.status_code in (400, 413) and any(
                hint in message.lower() for hint in _OVERFLOW_HINTS
            ):
                raise ContextOverflow(f"{self.url}: {message}")
            raise LlmError(f"{self.url} answered {response.status_code}: {message}")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("message.content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmError(
                f"{self.url} sent a reply that is not a chat completion: {exc}"
            ) from None
        usage = data.get("usage") or {}
        return ChatCompletion(
            text=text,
            model=str(data.get("model") or self.model_name),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=time.perf_counter() - started,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _error_message(response: httpx.Response) -> str:
    """The server's own error text: OpenAI's ``{"error": {"message"}}``, ours, or the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(data.get("detail"), str):
            return str(data["detail"])
    return str(data)[:500]


# -- settings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """The ``llm_*`` settings, read with ``getattr`` so the process ``Settings`` may or may
    not declare them yet (``SIPSCRIBE_LLM_*`` once it does)."""

    backend: str = "llama"  # "llama", "openai" or "none"
    model_path: Path | None = None  # a GGUF file; None: the packaged Qwen2.5-Coder 1.5B
    cache_dir: Path = Path("data/models")
    threads: int = 1
    batch_threads: int = 2
    context_tokens: int = 4096
    nice: int = 19
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = 300.0
    max_output_tokens: int = 768
    chunk_tokens: int | None = None

    @classmethod
    def of(cls, settings: Any) -> LlmSettings:
        def get(name: str, default: Any) -> Any:
            value = getattr(settings, f"llm_{name}", None)
            return default if value is None else value

        base = cls()
        cache = getattr(settings, "resolved_model_cache_dir", None)
        model_path = get("model_path", None)
        chunk_tokens = get("chunk_tokens", None)
        return cls(
            backend=str(get("backend", base.backend)).lower(),
            model_path=Path(model_path).expanduser() if model_path else None,
            cache_dir=Path(cache) if cache is not None else Path("data/models"),
            threads=int(get("threads", base.threads)),
            batch_threads=int(get("batch_threads", base.batch_threads)),
            context_tokens=int(get("context_tokens", base.context_tokens)),
            nice=int(get("nice", base.nice)),
            base_url=get("base_url", None),
            model=get("model", None),
            api_key=get("api_key", None),
            timeout_s=float(get("timeout_s", base.timeout_s)),
            max_output_tokens=int(get("max_output_tokens", base.max_output_tokens)),
            chunk_tokens=int(chunk_tokens) if chunk_tokens else None,
        )


def build_backend(settings: Any) -> LlmBackend | None:
    """The backend the settings name; None for ``llm_backend = "none"``.

    The llama backend's worker process starts on first use, so building it is cheap;
    the model file is assembled (once) here, which may take a few seconds the first time.
    """
    cfg = LlmSettings.of(settings)
    if cfg.backend == "none":
        return None
    if cfg.backend == "openai":
        if not cfg.base_url:
            raise ValueError("llm_backend 'openai' needs llm_base_url")
        return OpenAICompatibleBackend(
            cfg.base_url,
            cfg.model or "default",
            api_key=cfg.api_key,
            timeout_s=cfg.timeout_s,
            context_tokens=cfg.context_tokens,
        )
    if cfg.backend == "llama":
        from sipscribe.intelligence.llama import LlamaConfig, LlamaProcessBackend
        from sipscribe.intelligence.models import resolve_gguf

        path = resolve_gguf(cfg.model_path, cache_dir=cfg.cache_dir)
        return LlamaProcessBackend(
            LlamaConfig(
                model_path=path,
                context_tokens=cfg.context_tokens,
                threads=cfg.threads,
                batch_threads=cfg.batch_threads,
                nice=cfg.nice,
            ),
            request_timeout_s=cfg.timeout_s,
        )
    raise ValueError(f"llm_backend {cfg.backend!r} is not one of llama, openai, none")
