"""Helpers shared by the delivery unit and integration tests.

``StoreWriter`` is a TEST HELPER standing in for the storage subscriber that ``app.py`` wires
beside the delivery service: it writes pipeline events into the store the way the real one
does (utterance ``sequence`` = the pipeline's, raw text kept as ``text`` and the redacted one
as ``redacted_text`` when both exist), so the bundle, replay and export paths read real rows.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sipscribe.api.metrics import Metrics
from sipscribe.config import Settings
from sipscribe.delivery.service import DeliveryOptions, DeliveryService
from sipscribe.intelligence.redacting_sink import RedactedUtteranceEvent
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    DtmfReceived,
    PipelineEvent,
    StreamStarted,
    StreamStopped,
    UtteranceEvent,
)
from sipscribe.pipeline.utterance import Utterance
from sipscribe.store import calls as call_store
from sipscribe.store import tenants as tenant_store
from sipscribe.store import utterances as utterance_store
from sipscribe.store import webhooks as webhook_store
from sipscribe.store.db import Database

# Calls "happen" now: the bundle sweep only looks at recently ended calls.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


async def tenant(database: Database, name: str = "acme", **settings: Any) -> str:
    async with database.session() as s:
        record = await tenant_store.get_or_create_tenant(s, name=name)
        if settings:
            record.settings = {**(record.settings or {}), **settings}
            await s.commit()
        return record.id


async def add_target(
    database: Database,
    tenant_id: str,
    url: str,
    *,
    secret: str = "whsec_test_secret_0123456789",
    events: tuple[str, ...] = (),
    **options: Any,
) -> str:
    async with database.session() as s:
        target = await webhook_store.create_webhook_target(
            s, tenant_id=tenant_id, url=url, secret=secret, events=events, options=options
        )
        return target.id


def call_events(
    call_id: str,
    tenant_id: str,
    *,
    utterances: int,
    external_id: str | None = "ext-1",
    dtmf_after: int | None = None,
    redacted: bool = False,
) -> Iterator[PipelineEvent]:
    """A two-party call: started, two streams, ``utterances`` alternating utterances,
    optionally a DTMF digit after utterance ``dtmf_after``, streams stopped, ended."""
    yield CallStarted(
        call_id=call_id,
        source="siprec",
        external_id=external_id,
        tenant_id=tenant_id,
        metadata={
            "participants": [
                {"role": "customer", "aor": "sip:+15551230000@pbx.example"},
                {"role": "agent", "aor": "sip:agent7@pbx.example", "name": "Agent Seven"},
            ]
        },
        at=T0,
    )
    yield StreamStarted(call_id, f"{call_id}:0", 0, "agent", codec="PCMU", label="1", at=T0)
    yield StreamStarted(call_id, f"{call_id}:1", 1, "customer", codec="PCMU", label="2", at=T0)
    for n in range(1, utterances + 1):
        channel = n % 2
        u = Utterance(
            call_id=call_id,
            stream_id=f"{call_id}:{channel}",
            channel=channel,
            role="customer" if channel else "agent",
            sequence=n,
            start_ms=n * 1000,
            end_ms=n * 1000 + 800,
            text=f"utterance number {n}",
        )
        if redacted:
            masked = Utterance(**{**_fields(u), "text": f"utterance number {'#' * len(str(n))}"})
            yield RedactedUtteranceEvent(masked, at=T0 + timedelta(seconds=n), raw=u)
        else:
            yield UtteranceEvent(u, at=T0 + timedelta(seconds=n))
        if dtmf_after == n:
            yield DtmfReceived(call_id, f"{call_id}:1", 1, "customer", "5", n * 1000 + 900, 120)
    yield StreamStopped(call_id, f"{call_id}:0")
    yield StreamStopped(call_id, f"{call_id}:1")
    yield CallEnded(call_id, "bye", utterances, utterances * 1000 + 2000)


def _fields(u: Utterance) -> dict[str, Any]:
    return {f: getattr(u, f) for f in u.__dataclass_fields__}


class StoreWriter:
    """TEST HELPER: the storage subscriber (see the module docstring)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.tenants: dict[str, str] = {}

    async def handle(self, event: PipelineEvent) -> None:
        async with self.database.session() as s:
            if isinstance(event, CallStarted):
                assert event.tenant_id is not None
                self.tenants[event.call_id] = event.tenant_id
                await call_store.create_call(
                    s,
                    tenant_id=event.tenant_id,
                    call_id=event.call_id,
                    source="siprec",
                    external_id=event.external_id,
                    direction="inbound",
                    started_at=event.at,
                )
                for i, p in enumerate(event.metadata.get("participants", [])):
                    await call_store.upsert_participant(
                        s,
                        call_id=event.call_id,
                        participant_id=f"p{i}",
                        aor=p.get("aor"),
                        name=p.get("name"),
                        role=p.get("role"),
                    )
            elif isinstance(event, StreamStarted):
                await call_store.upsert_stream(
                    s,
                    call_id=event.call_id,
                    stream_id=event.stream_id,
                    channel=event.channel,
                    label=event.label,
                    role=event.role,
                    codec=event.codec,
                )
            elif isinstance(event, UtteranceEvent):
                u = event.utterance
                raw = event.raw if isinstance(event, RedactedUtteranceEvent) else None
                await utterance_store.add_utterance(
                    s,
                    call_id=u.call_id,
                    stream_id=u.stream_id,
                    channel=u.channel,
                    role=u.role,
                    start_ms=u.start_ms,
                    end_ms=u.end_ms,
                    text=raw.text if raw is not None else u.text,
                    redacted_text=u.text if raw is not None else None,
                    sequence=u.sequence,
                )
            elif isinstance(event, DtmfReceived):
                await utterance_store.add_dtmf_event(
                    s,
                    call_id=event.call_id,
                    digit=event.digit,
                    start_ms=event.start_ms,
                    duration_ms=event.duration_ms,
                    channel=event.channel,
                    stream_id=event.stream_id,
                )
            elif isinstance(event, CallEnded):
                await call_store.end_call(
                    s,
                    call_id=event.call_id,
                    tenant_id=self.tenants[event.call_id],
                    ended_at=T0 + timedelta(milliseconds=event.duration_ms),
                )

    async def run(self, events: AsyncIterable[PipelineEvent]) -> None:
        async for event in events:
            await self.handle(event)


async def eventually(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


class Pipeline:
    """A bus with the storage helper and the delivery service subscribed, as app.py wires it."""

    def __init__(self, database, options: DeliveryOptions | None = None, **kw: Any) -> None:
        self.bus = EventBus()
        self.service = DeliveryService(database, Settings(), Metrics(), options=options, **kw)
        self.writer = StoreWriter(database)
        self.published: dict[tuple[str, int], float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subs = [self.bus.subscribe("store"), self.bus.subscribe("delivery")]

    async def __aenter__(self) -> Pipeline:
        await self.service.start()
        self._tasks = [
            asyncio.create_task(self.writer.run(self._subs[0])),
            asyncio.create_task(self.service.run(self._subs[1])),
        ]
        return self

    async def publish(self, events) -> None:
        for event in events:
            if event.type == "utterance":
                self.published[(event.call_id, event.utterance.sequence)] = time.perf_counter()
            await self.bus.publish(event)

    async def __aexit__(self, *exc) -> None:
        await self.bus.close()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 10)
        await self.service.stop()


_ids = itertools.count(1)


def new_call_id() -> str:
    return f"call-{next(_ids):04d}"
