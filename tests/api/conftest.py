"""Fixtures for the API tests: the app over a real database on each backend, an in-process
client, key factories, and clearly named test doubles for the transcription runner."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sipscribe.api.main import create_app
from sipscribe.api.options import ApiOptions
from sipscribe.api.services import AppServices
from sipscribe.config import Settings
from sipscribe.store import calls, keys
from sipscribe.store.db import Database
from sipscribe.store.utterances import add_utterance


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_backends = _load(
    "sipscribe_test_backends", Path(__file__).resolve().parents[1] / "store" / "backends.py"
)

backend = _backends.backend
postgres_url = _backends.postgres_url
pg_schema = _backends.pg_schema
sqlite_template = _backends.sqlite_template
db_target = _backends.db_target
db_settings = _backends.db_settings
database = _backends.database
session = _backends.session

# Segments the fake transcriber stores: (channel, role, start_ms, end_ms, text, redacted_text).
DEFAULT_SEGMENTS = [
    (1, "customer", 0, 2400, "Hi, I was charged twice this month. Can you fix it?", None),
    (0, "agent", 2600, 5000, "Sure. I can refund the second charge today.", None),
    (
        1,
        "customer",
        5200,
        7000,
        "My card is 4111 1111 1111 1111.",
        "My card is ###################.",
    ),
]


class StoringTranscriptionRunner:
    """TEST DOUBLE for the real file transcriber (wired by ``app.py``): instead of running ASR
    on the file, it stores a fixed list of segments as utterances, or raises ``error``."""

    def __init__(self, database: Database, segments: Iterable[tuple] = DEFAULT_SEGMENTS) -> None:
        self.database = database
        self.segments = list(segments)
        self.error: Exception | None = None
        # When set, transcription waits for it: lets a test look at a job in flight.
        self.gate: asyncio.Event | None = None
        self.calls: list[tuple[str, str, Path, list[str] | None]] = []

    async def transcribe_call(
        self, call_id: str, tenant_id: str, path: Path, roles: list[str] | None
    ) -> None:
        self.calls.append((call_id, tenant_id, path, roles))
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), timeout=10)
        if self.error is not None:
            raise self.error
        async with self.database.session() as s:
            for channel, role, start_ms, end_ms, text, redacted in self.segments:
                await add_utterance(
                    s,
                    call_id=call_id,
                    channel=channel,
                    role=role,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    text=text,
                    redacted_text=redacted,
                )


class ManualClock:
    """A monotonic clock the test moves by hand (rate-limit windows)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    """The app under test and handles on everything behind it."""

    app: Any
    client: httpx.AsyncClient
    services: AppServices
    database: Database
    settings: Settings
    runner: StoringTranscriptionRunner
    clock: ManualClock
    _keys: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)

    async def key(self, tenant: str = "acme", scopes: Iterable[str] = ("admin",)) -> str:
        """A secret for a key of ``tenant`` with ``scopes`` (one per combination)."""
        wanted = (tenant, tuple(scopes))
        if wanted not in self._keys:
            async with self.database.session() as s:
                _, secret = await keys.create_key(
                    s, tenant_name=tenant, scopes=list(wanted[1]), name="test"
                )
            self._keys[wanted] = secret
        return self._keys[wanted]

    async def headers(self, tenant: str = "acme", scopes: Iterable[str] = ("admin",)) -> dict:
        return {"Authorization": f"Bearer {await self.key(tenant, scopes)}"}

    async def tenant_id(self, tenant: str = "acme") -> str:
        from sipscribe.store.tenants import get_or_create_tenant

        async with self.database.session() as s:
            return (await get_or_create_tenant(s, name=tenant)).id

    async def make_call(
        self,
        tenant: str = "acme",
        *,
        recording: bool = True,
        transcribed: bool = False,
        **fields: Any,
    ) -> str:
        """A completed call of ``tenant``; with a recording file and/or a stored transcript."""
        tenant_id = await self.tenant_id(tenant)
        fields.setdefault("source", "upload")
        fields.setdefault("state", "completed")
        async with self.database.session() as s:
            call = await calls.create_call(s, tenant_id=tenant_id, **fields)
            if recording:
                path = self.settings.data_dir / "recordings" / call.id / "call.wav"
                path.parent.mkdir(parents=True)
                path.write_bytes(b"RIFF-test-recording")
                await calls.update_call(
                    s, call_id=call.id, tenant_id=tenant_id, changes={"recording_path": str(path)}
                )
        if transcribed:
            await self.runner.transcribe_call(call.id, tenant_id, Path("unused"), None)
            self.runner.calls.clear()
            async with self.database.session() as s:
                await calls.set_transcription_state(
                    s, call_id=call.id, tenant_id=tenant_id, state="speech_stored"
                )
        return call.id

    async def settle(self) -> None:
        """Wait for background jobs (bounded)."""
        assert await self.services.drain(10.0), "background jobs did not finish in 10 s"


async def make_api(
    database: Database, settings: Settings, *, options: ApiOptions | None = None
) -> AsyncIterator[Api]:
    clock = ManualClock()
    runner = StoringTranscriptionRunner(database)
    services = AppServices(database=database, transcription_runner=runner, clock=clock, ready=True)
    app = create_app(settings, services=services, options=options)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sipscribe.test") as client:
        yield Api(app, client, services, database, settings, runner, clock)
    await services.aclose(timeout=5.0)


@pytest.fixture
async def api(database: Database, db_settings: Settings) -> AsyncIterator[Api]:
    async for value in make_api(database, db_settings):
        yield value
