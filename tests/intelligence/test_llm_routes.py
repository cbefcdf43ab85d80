"""``POST /v1/llms/completion`` and ``POST /v1/asr/transcribe``: scopes, errors, results.

The app is the real API (``create_app`` with the two routers as ``extra_routers``) over a
real SQLite database; the language model is ``ScriptedBackend`` (a test double) and the
ASR engine is either ``FixedTextEngine`` (a test double that names what it heard by
duration) or, in the slow test, the real tiny.en Whisper engine.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from sipscribe.api.main import create_app
from sipscribe.api.routes import asr, llms
from sipscribe.api.services import AppServices
from sipscribe.asr.base import Transcript
from sipscribe.config import Settings
from sipscribe.intelligence.llm import BackendUnavailable, ContextOverflow, LlmError
from sipscribe.media.audiofile import write_audio
from sipscribe.store import keys
from sipscribe.store.db import Database, init_db
from sipscribe.testing.corpus import CorpusMissing, build_conversation, load_corpus

from .llm_helpers import ScriptedBackend


@dataclass
class Api:
    client: httpx.AsyncClient
    services: AppServices
    app: Any
    database: Database

    async def headers(self, *scopes: str) -> dict[str, str]:
        async with self.database.session() as s:
            _, secret = await keys.create_key(
                s, tenant_name="acme", scopes=list(scopes or ("admin",)), name="test"
            )
        return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path)
    database = await init_db(settings)
    services = AppServices(database=database, ready=True)
    app = create_app(settings, services=services, extra_routers=[llms.router, asr.router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sipscribe.test") as c:
        yield Api(c, services, app, database)
    await services.aclose(timeout=5.0)
    await database.dispose()


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    assert body["statusCode"] == response.status_code
    assert body["requestId"] == response.headers["x-request-id"]
    return response.status_code, body["name"], body["message"]


CHAT = {"messages": [{"role": "user", "content": "Say hi"}]}


# -- /v1/llms/completion --------------------------------------------------------------------


async def test_completion_returns_the_models_text(api: Api) -> None:
    backend = ScriptedBackend(["Hi there!"], model_name="qwen-test")
    api.services.llm_backend = backend  # type: ignore[attr-defined]
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi"},
        ],
        "max_tokens": 30,
        "temperature": 0.7,
        "json_schema": {"type": "object"},
    }
    response = await api.client.post(
        "/v1/llms/completion", json=body, headers=await api.headers("llm.use")
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data == {
        "text": "Hi there!",
        "model": "qwen-test",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
    }
    (sent,) = backend.requests
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "Be brief."),
        ("user", "Say hi"),
    ]
    assert (sent.max_tokens, sent.temperature, sent.json_schema) == (30, 0.7, {"type": "object"})
    assert getattr(api.app.state, "llm_waiting", 0) == 0


async def test_completion_without_a_key_is_401(api: Api) -> None:
    api.services.llm_backend = ScriptedBackend(["x"])  # type: ignore[attr-defined]
    response = await api.client.post("/v1/llms/completion", json=CHAT)
    assert error_of(response)[:2] == (401, "UnauthorizedError")


async def test_completion_needs_llm_use_not_summary_write(api: Api) -> None:
    """Every scope but ``llm.use`` and ``admin`` (the summary scopes included) is refused."""
    backend = ScriptedBackend(["x"])
    api.services.llm_backend = backend  # type: ignore[attr-defined]
    others = [s.value for s in keys.Scope if s not in (keys.Scope.LLM_USE, keys.Scope.ADMIN)]
    assert "calls.summary.write" in others
    for scopes in (["calls.summary.write"], others):
        response = await api.client.post(
            "/v1/llms/completion", json=CHAT, headers=await api.headers(*scopes)
        )
        assert error_of(response) == (
            403,
            "ForbiddenError",
            "This API key lacks the scope 'llm.use'",
        )
    assert backend.requests == []


@pytest.mark.parametrize("scope", ["llm.use", "admin"])
async def test_completion_with_llm_use_or_admin_is_200(api: Api, scope: str) -> None:
    backend = ScriptedBackend(["ok"])
    api.services.llm_backend = backend  # type: ignore[attr-defined]
    response = await api.client.post(
        "/v1/llms/completion", json=CHAT, headers=await api.headers(scope)
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["text"] == "ok"
    assert len(backend.requests) == 1


async def test_completion_without_a_model_is_503(api: Api) -> None:
    response = await api.client.post("/v1/llms/completion", json=CHAT, headers=await api.headers())
    assert error_of(response) == (
        503,
        "ServiceUnavailableError",
        "No language model is configured on this server",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"messages": []},
            "body.messages: List should have at least 1 item after validation, not 0",
        ),
        (
            {"messages": [{"role": "robot", "content": "x"}]},
            "body.messages.0.role: Input should be 'system', 'user' or 'assistant'",
        ),
        (
            {**CHAT, "max_tokens": 5000},
            "body.max_tokens: Input should be less than or equal to 4096",
        ),
        ({**CHAT, "stream": True}, "body.stream: Extra inputs are not permitted"),
    ],
)
async def test_completion_validation_errors(api: Api, body: dict, message: str) -> None:
    api.services.llm_backend = ScriptedBackend()  # type: ignore[attr-defined]
    response = await api.client.post("/v1/llms/completion", json=body, headers=await api.headers())
    assert error_of(response) == (400, "BadRequestError", message)


async def test_completion_wants_json(api: Api) -> None:
    api.services.llm_backend = ScriptedBackend()  # type: ignore[attr-defined]
    response = await api.client.post(
        "/v1/llms/completion",
        content=b"messages=hi",
        headers={**await api.headers(), "content-type": "application/x-www-form-urlencoded"},
    )
    assert error_of(response) == (
        415,
        "UnsupportedMediaTypeError",
        "Content-Type must be application/json, got application/x-www-form-urlencoded",
    )


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (
            ContextOverflow("prompt of 5000 tokens"),
            400,
            "messages: too long for the model (prompt of 5000 tokens)",
        ),
        (
            BackendUnavailable("worker exited"),
            503,
            "The language model is not available: worker exited",
        ),
        (LlmError("grammar failed"), 500, "The language model failed: grammar failed"),
    ],
)
async def test_completion_backend_errors(
    api: Api, error: Exception, status: int, message: str
) -> None:
    api.services.llm_backend = ScriptedBackend([error])  # type: ignore[attr-defined]
    response = await api.client.post("/v1/llms/completion", json=CHAT, headers=await api.headers())
    assert error_of(response)[0::2] == (status, message)
    assert api.app.state.llm_waiting == 0


async def test_completion_refuses_when_too_many_wait(api: Api) -> None:
    api.services.llm_backend = ScriptedBackend(["x"])  # type: ignore[attr-defined]
    api.app.state.llm_waiting = llms.MAX_WAITING
    response = await api.client.post("/v1/llms/completion", json=CHAT, headers=await api.headers())
    assert error_of(response) == (
        503,
        "ServiceUnavailableError",
        "The language model is busy; retry shortly",
    )


# -- /v1/asr/transcribe ---------------------------------------------------------------------


class FixedTextEngine:
    """TEST DOUBLE for the Whisper engine: "heard N.N seconds" for each utterance, so the
    route's plumbing (upload, VAD, roles, ordering) is checked without ASR cost."""

    name = "fixed"

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        return Transcript(
            text=f"heard {audio.size / 16000:.1f} seconds", language=language, confidence=0.9
        )

    def transcribe_many(
        self, audios: Sequence[np.ndarray], *, language: str | None = None
    ) -> list[Transcript]:
        return [self.transcribe(a, language=language) for a in audios]


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[str]]:
    """A two-channel WAV of real speech (corpus turns alternating) and the turns' texts."""
    try:
        recordings = load_corpus(sets=("librivox",))[:3]
    except CorpusMissing as exc:
        pytest.skip(str(exc))
    tracks, placed = build_conversation(recordings, gap_s=1.0)
    path = tmp_path_factory.mktemp("wav") / "call.wav"
    write_audio(path, tracks, rate=16000)
    return path.read_bytes(), [p.text for p in placed]


def upload(data: bytes, **fields: str) -> dict[str, Any]:
    return {"files": {"file": ("call.wav", io.BytesIO(data), "audio/wav")}, "data": fields}


async def test_transcribe_returns_utterances_in_time_order(
    api: Api, call_wav: tuple[bytes, list[str]]
) -> None:
    api.services.asr_engine = FixedTextEngine()  # type: ignore[attr-defined]
    response = await api.client.post(
        "/v1/asr/transcribe",
        **upload(call_wav[0], roles="agent,customer"),
        headers=await api.headers("calls.transcription.write"),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["channels"] == 2
    assert data["duration_s"] > 5
    utterances = data["utterances"]
    assert [u["channel"] for u in utterances] == [0, 1, 0]
    assert [u["role"] for u in utterances] == ["agent", "customer", "agent"]
    assert all(u["text"].startswith("heard ") and u["confidence"] == 0.9 for u in utterances)
    starts = [u["start"] for u in utterances]
    assert starts == sorted(starts)
    assert data["text"] == "\n".join(u["text"] for u in utterances)
    assert list((Path(api.app.state.settings.data_dir) / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"content": b"{}", "headers": {"content-type": "application/json"}},
            415,
            "Content-Type must be multipart/form-data, got application/json",
        ),
        (
            {"files": {"other": ("a.wav", b"x", "audio/wav")}},
            400,
            "file: a file part named 'file' is required",
        ),
        (
            {"files": {"file": ("a.txt", b"hello", "text/plain")}},
            415,
            "file: content type text/plain is not audio; send audio/* (WAV, MP3, OGG, FLAC, …)",
        ),
        ({"files": {"file": ("a.wav", b"", "audio/wav")}}, 400, "file: the uploaded file is empty"),
        ({"files": {"file": ("a.wav", b"RIFF not really", "audio/wav")}}, 400, None),
        (
            {"files": {"file": ("a.wav", b"x", "audio/wav")}, "data": {"roles": "agent,boss"}},
            400,
            "roles: 'boss' is not 'agent' or 'customer'",
        ),
    ],
)
async def test_transcribe_errors(
    api: Api, kwargs: dict[str, Any], status: int, message: str | None
) -> None:
    api.services.asr_engine = FixedTextEngine()  # type: ignore[attr-defined]
    headers = {**await api.headers(), **kwargs.pop("headers", {})}
    response = await api.client.post("/v1/asr/transcribe", headers=headers, **kwargs)
    code, _, text = error_of(response)
    assert code == status
    if message is None:
        assert text.startswith("file: the upload: not a readable audio file")
    else:
        assert text == message


async def test_transcribe_roles_must_match_channels(
    api: Api, call_wav: tuple[bytes, list[str]]
) -> None:
    api.services.asr_engine = FixedTextEngine()  # type: ignore[attr-defined]
    response = await api.client.post(
        "/v1/asr/transcribe", **upload(call_wav[0], roles="agent"), headers=await api.headers()
    )
    assert error_of(response) == (
        400,
        "BadRequestError",
        "roles: 1 role(s) given for a recording with 2 channel(s)",
    )


async def test_transcribe_scope_and_engine(api: Api, call_wav: tuple[bytes, list[str]]) -> None:
    response = await api.client.post(
        "/v1/asr/transcribe", **upload(call_wav[0]), headers=await api.headers("calls.read")
    )
    assert error_of(response) == (
        403,
        "ForbiddenError",
        "This API key lacks the scope 'calls.transcription.write'",
    )
    response = await api.client.post(
        "/v1/asr/transcribe", **upload(call_wav[0]), headers=await api.headers()
    )
    assert error_of(response) == (
        503,
        "ServiceUnavailableError",
        "Transcription is not available on this server yet",
    )


@pytest.mark.slow
async def test_transcribe_with_the_real_engine(api: Api, call_wav: tuple[bytes, list[str]]) -> None:
    from sipscribe.asr.evaluation import word_error_rate
    from sipscribe.asr.whisper import WhisperEngine

    api.services.asr_engine = WhisperEngine.from_settings(Settings())  # type: ignore[attr-defined]
    response = await api.client.post(
        "/v1/asr/transcribe", **upload(call_wav[0]), headers=await api.headers()
    )
    assert response.status_code == 200, response.text
    texts = [u["text"] for u in response.json()["data"]["utterances"]]
    assert word_error_rate([" ".join(call_wav[1])], [" ".join(texts)]) < 0.3
