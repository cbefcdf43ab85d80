"""DeliveryService over a real database (SQLite and PostgreSQL) with mock HTTP receivers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from sipscribe.api.metrics import Metrics
from sipscribe.config import Settings
from sipscribe.delivery.retry import RetryPolicy
from sipscribe.delivery.service import DeliveryOptions, DeliveryService, summary_expected
from sipscribe.delivery.signing import verify
from sipscribe.delivery.vcon import validate_vcon
from sipscribe.pipeline.events import UtteranceEvent
from sipscribe.store import summaries as summary_store
from sipscribe.store import webhooks as webhook_store

from .helpers import StoreWriter, add_target, call_events, eventually, tenant

SECRET = "whsec_test_secret_0123456789"
FAST = DeliveryOptions(
    retry=RetryPolicy(base=0.02, factor=2.0, max_delay=0.1),
    target_cache_s=0.0,
    bundle_check_s=0.02,
    drain_s=2.0,
    fqhn="rec.example.com",
)


class Receiver:
    """Mock webhook receiver; ``fail`` makes it answer 503 while set."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.fail = False
        self.failed = 0
        self.gate: asyncio.Event | None = None
        self.arrived = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.arrived += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.failed += 1
            return httpx.Response(503, text="down")
        self.requests.append(request)
        return httpx.Response(200)

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(r.content)
            for r in self.requests
            if event is None or r.headers["x-sipscribe-event"] == event
        ]

    def sequences(self) -> list[int]:
        return [b["sequence"] for b in self.bodies("transcript")]


def service(database, receiver: Receiver, options: DeliveryOptions = FAST) -> DeliveryService:
    return DeliveryService(
        database,
        Settings(),
        Metrics(),
        options=options,
        transport_factory=lambda spec: httpx.MockTransport(receiver),
    )


async def feed(svc: DeliveryService, events, writer: StoreWriter | None = None) -> None:
    for event in events:
        if writer is not None:
            await writer.handle(event)
        await svc.handle(event)


async def test_every_utterance_in_order_signed(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    target = await add_target(database, tenant_id, "https://hooks.example/rt", secret=SECRET)
    svc = service(database, receiver)
    await svc.start()
    await feed(svc, call_events("c1", tenant_id, utterances=40, dtmf_after=3))
    await eventually(lambda: len(receiver.requests) == 43 and svc.idle())
    await svc.stop()
    assert receiver.sequences() == list(range(1, 41))
    kinds = [r.headers["x-sipscribe-event"] for r in receiver.requests]
    assert kinds[0] == "call.started" and kinds[-1] == "call.ended"
    assert kinds.index("dtmf") == kinds.index("transcript") + 3
    for request in receiver.requests:
        sig = request.headers["x-sipscribe-signature"]
        timestamp = int(sig.split(",")[0][2:])
        verify(sig, request.content, secret=SECRET, now=timestamp)
    stats = svc.stats(target)
    assert stats["delivered"] == 43 and stats["dropped"] == 0
    assert stats["last_dispatch_ms"] is not None
    async with database.session() as s:  # drop_oldest: nothing in the outbox
        assert await webhook_store.list_deliveries(s, tenant_id=tenant_id) == []


async def test_subscriptions_filter_events(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    await add_target(database, tenant_id, "https://hooks.example/a", events=("call.ended",))
    svc = service(database, receiver)
    await feed(svc, call_events("c1", tenant_id, utterances=3))
    await eventually(lambda: receiver.requests and svc.idle())
    await svc.stop()
    assert [b["type"] for b in receiver.bodies()] == ["call.ended"]


async def test_drop_oldest_counts_failures_without_retrying(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    target = await add_target(
        database, tenant_id, "https://hooks.example/rt", events=("transcript",)
    )
    svc = service(database, receiver)
    events = list(call_events("c1", tenant_id, utterances=10))
    await feed(svc, events[:6])  # started, 2 streams, utterances 1-3
    await eventually(lambda: len(receiver.requests) == 3 and svc.idle())
    receiver.fail = True
    await feed(svc, events[6:9])  # utterances 4-6
    await eventually(lambda: receiver.failed == 3 and svc.idle())
    receiver.fail = False
    await feed(svc, events[9:])
    await eventually(lambda: len(receiver.requests) == 7 and svc.idle())
    await svc.stop()
    assert receiver.sequences() == [1, 2, 3, 7, 8, 9, 10]
    stats = svc.stats(target)
    assert stats["dropped"] == 3 and stats["failed_attempts"] == 3 and stats["retried"] == 0
    assert stats["last_error"] is None or "503" in stats["last_error"]


async def test_drop_oldest_queue_bound(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    receiver.gate = asyncio.Event()
    target = await add_target(
        database,
        tenant_id,
        "https://hooks.example/rt",
        events=("transcript",),
        realtime={"policy": "drop_oldest", "max_queue": 5},
    )
    svc = service(database, receiver)
    events = list(call_events("c1", tenant_id, utterances=20))
    await feed(svc, events[:4])  # up to utterance 1, which then waits at the receiver
    await eventually(lambda: receiver.arrived == 1)
    await feed(svc, events[4:])
    receiver.gate.set()
    await eventually(lambda: svc.idle())
    await svc.stop()
    sequences = receiver.sequences()
    # The first went out before the gate; of the rest only the newest five were kept.
    assert sequences == [1, 16, 17, 18, 19, 20]
    assert svc.stats(target)["dropped"] == 14


async def test_at_least_once_retries_in_order_through_the_outbox(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    target = await add_target(
        database,
        tenant_id,
        "https://hooks.example/rt",
        events=("transcript",),
        realtime={"policy": "at_least_once", "max_age_s": 60},
    )
    svc = service(database, receiver)
    receiver.fail = True
    await feed(svc, call_events("c1", tenant_id, utterances=8))
    await eventually(lambda: receiver.failed >= 4)
    assert receiver.requests == []
    receiver.fail = False
    await eventually(lambda: len(receiver.requests) == 8 and svc.idle())
    await svc.stop()
    assert receiver.sequences() == list(range(1, 9))
    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert keys == [f"transcript:c1:{n}" for n in range(1, 9)]
    stats = svc.stats(target)
    assert stats["retried"] >= 3 and stats["dropped"] == 0 and stats["delivered"] == 8
    async with database.session() as s:
        rows = await webhook_store.list_deliveries(s, tenant_id=tenant_id)
    assert len(rows) == 8 and {r.state for r in rows} == {"delivered"}
    assert max(r.attempts for r in rows) >= 2
    assert {r.call_id for r in rows} == {"c1"}


async def test_replayed_events_are_not_queued_twice(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    await add_target(
        database,
        tenant_id,
        "https://hooks.example/rt",
        events=("transcript",),
        realtime={"policy": "at_least_once"},
    )
    svc = service(database, receiver)
    all_events = list(call_events("c1", tenant_id, utterances=3))
    events = [e for e in all_events if isinstance(e, UtteranceEvent)]
    await svc.handle(all_events[0])  # call.started: names the tenant
    await feed(svc, events)
    await feed(svc, events)
    await eventually(lambda: len(receiver.requests) == 3 and svc.idle())
    await asyncio.sleep(0.05)
    await svc.stop()
    assert receiver.sequences() == [1, 2, 3]


async def test_restart_resumes_pending_outbox_in_order(database) -> None:
    tenant_id = await tenant(database)
    down, up = Receiver(), Receiver()
    down.fail = True
    await add_target(
        database,
        tenant_id,
        "https://hooks.example/rt",
        events=("transcript",),
        realtime={"policy": "at_least_once", "max_age_s": 60},
    )
    first = service(database, down, DeliveryOptions(**{**FAST.__dict__, "lane_memory": 4}))
    await first.start()
    await feed(first, call_events("c1", tenant_id, utterances=12))
    await feed(first, call_events("c2", tenant_id, utterances=5))
    await eventually(lambda: down.failed >= 2)
    await first.stop()
    async with database.session() as s:
        pending = await webhook_store.list_deliveries(s, tenant_id=tenant_id, state="pending")
    assert len(pending) == 17

    second = service(database, up)
    await second.start()
    await eventually(lambda: len(up.requests) == 17 and second.idle())
    await second.stop()
    by_call: dict[str, list[int]] = {}
    for body in up.bodies("transcript"):
        by_call.setdefault(body["callId"], []).append(body["sequence"])
    assert by_call == {"c1": list(range(1, 13)), "c2": list(range(1, 6))}


async def test_expired_deliveries_are_dead_lettered_and_can_be_redelivered(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    receiver.fail = True
    target = await add_target(
        database,
        tenant_id,
        "https://hooks.example/rt",
        events=("transcript",),
        realtime={"policy": "at_least_once", "max_age_s": 0.2},
    )
    svc = service(database, receiver)
    started, *rest = call_events("c1", tenant_id, utterances=1)
    await svc.handle(started)
    await svc.handle(next(e for e in rest if isinstance(e, UtteranceEvent)))

    async def failed() -> list:
        async with database.session() as s:
            return list(await webhook_store.list_deliveries(s, tenant_id=tenant_id, state="failed"))

    (dead,) = await eventually(failed)
    assert dead.attempts >= 1 and "503" in (dead.last_error or "")
    assert svc.stats(target)["dead_lettered"] == 1
    receiver.fail = False
    async with database.session() as s:
        from datetime import UTC, datetime, timedelta

        await webhook_store.redeliver(
            s,
            delivery_id=dead.id,
            tenant_id=tenant_id,
            expires_at=datetime.now(UTC) + timedelta(seconds=30),
        )
    svc.resume(target, "c1")
    await eventually(lambda: len(receiver.requests) == 1 and svc.idle())
    await svc.stop()
    async with database.session() as s:
        row = await webhook_store.get_delivery(s, delivery_id=dead.id, tenant_id=tenant_id)
    assert row is not None and row.state == "delivered"


async def test_bundle_json_and_vcon_after_call_end(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    json_target = await add_target(database, tenant_id, "https://a.example/b", events=("bundle",))
    await add_target(database, tenant_id, "https://b.example/b", events=("bundle",), format="vcon")
    writer = StoreWriter(database)
    svc = service(database, receiver)
    await svc.start()
    await feed(svc, call_events("c1", tenant_id, utterances=4, redacted=True), writer)
    await eventually(lambda: len(receiver.requests) == 2 and svc.idle())
    await svc.stop()
    by_host = {r.url.host: r for r in receiver.requests}
    bundle = json.loads(by_host["a.example"].content)
    assert by_host["a.example"].headers["content-type"] == "application/json"
    assert by_host["a.example"].headers["idempotency-key"] == "bundle:c1"
    assert bundle["type"] == "bundle" and bundle["call"]["id"] == "c1"
    assert [t["text"] for t in bundle["transcriptions"]] == ["utterance number #"] * 4
    vcon = json.loads(by_host["b.example"].content)
    assert by_host["b.example"].headers["content-type"] == "application/vcon+json"
    validate_vcon(vcon)
    assert "utterance number 1" not in by_host["b.example"].content.decode()
    async with database.session() as s:
        rows = await webhook_store.list_deliveries(s, tenant_id=tenant_id, target_id=json_target)
    assert [(r.event_type, r.state) for r in rows] == [("bundle", "delivered")]


async def test_bundle_waits_for_the_summary_when_the_tenant_summarises(database) -> None:
    assert summary_expected({"summary": {"enabled": True}})
    tenant_id = await tenant(database, summary={"enabled": True})
    receiver = Receiver()
    await add_target(database, tenant_id, "https://a.example/b", events=("bundle", "summary.ready"))
    writer = StoreWriter(database)
    svc = service(database, receiver)
    await svc.start()
    await feed(svc, call_events("c1", tenant_id, utterances=2), writer)
    await asyncio.sleep(0.2)
    assert receiver.requests == [] and svc.pending_bundles == 1
    async with database.session() as s:
        job = await summary_store.request_summary(s, call_id="c1", instructions=None)
    await asyncio.sleep(0.1)
    assert receiver.requests == []
    async with database.session() as s:
        await summary_store.finish_summary(
            s, summary_id=job.id, result={"engine": "llm", "headline": "Hello", "summary": "Hi."}
        )
    await svc.on_summary_ready("c1")
    await eventually(lambda: len(receiver.requests) == 2 and svc.idle())
    await svc.stop()
    # The ticker may queue the bundle before the hook sends summary.ready: either order.
    (summary,) = receiver.bodies("summary.ready")
    (bundle,) = receiver.bodies("bundle")
    assert summary["type"] == "summary.ready" and summary["summary"]["headline"] == "Hello"
    assert bundle["callHeadline"] == "Hello" and bundle["summary"] == "Hi."
    assert svc.pending_bundles == 0


async def test_bundle_gives_up_waiting_after_its_limit(database) -> None:
    tenant_id = await tenant(database, summary={"enabled": True})
    receiver = Receiver()
    await add_target(database, tenant_id, "https://a.example/b", events=("bundle",))
    writer = StoreWriter(database)
    svc = service(database, receiver, DeliveryOptions(**{**FAST.__dict__, "bundle_wait_s": 0.3}))
    await svc.start()
    await feed(svc, call_events("c1", tenant_id, utterances=1), writer)
    await eventually(lambda: len(receiver.requests) == 1)
    await svc.stop()
    assert receiver.bodies()[0]["summary"] is None


async def test_start_sweeps_ended_calls_that_never_got_a_bundle(database) -> None:
    tenant_id = await tenant(database)
    writer = StoreWriter(database)
    for event in call_events("c1", tenant_id, utterances=2):
        await writer.handle(event)  # stored while no delivery service ran
    receiver = Receiver()
    await add_target(database, tenant_id, "https://a.example/b", events=("bundle",))
    svc = service(database, receiver)
    await svc.start()
    await eventually(lambda: len(receiver.requests) == 1 and svc.idle())
    await svc.stop()
    assert receiver.bodies()[0]["call"]["id"] == "c1"
    again = service(database, receiver)
    await again.start()
    await asyncio.sleep(0.1)
    await again.stop()
    assert len(receiver.requests) == 1  # already queued: not sent again


async def test_live_feed_gets_every_event_with_positions(database) -> None:
    tenant_id = await tenant(database)
    svc = service(database, Receiver())
    sub = svc.feed.subscribe("c1", backlog=False)
    await feed(svc, call_events("c1", tenant_id, utterances=3, dtmf_after=2))
    messages = []
    while (m := sub.get_nowait()) is not None:
        messages.append((m["type"], m["sequence"]))
    await svc.stop()
    assert messages == [
        ("call.started", 0),
        ("stream.started", 0),
        ("stream.started", 0),
        ("utterance", 1),
        ("utterance", 2),
        ("dtmf", 2),
        ("utterance", 3),
        ("stream.stopped", 3),
        ("stream.stopped", 3),
        ("call.ended", 3),
    ]


async def test_disabled_target_gets_nothing(database) -> None:
    tenant_id = await tenant(database)
    receiver = Receiver()
    target = await add_target(database, tenant_id, "https://hooks.example/rt")
    async with database.session() as s:
        await webhook_store.update_webhook_target(
            s, target_id=target, tenant_id=tenant_id, enabled=False
        )
    svc = service(database, receiver)
    await feed(svc, call_events("c1", tenant_id, utterances=2))
    await asyncio.sleep(0.05)
    await svc.stop()
    assert receiver.requests == []


@pytest.mark.parametrize("policy", ["drop_oldest", "at_least_once"])
async def test_calls_are_independent_lanes(database, policy: str) -> None:
    """A receiver stuck on one call's request does not hold back another call's events."""
    tenant_id = await tenant(database)
    seen: list[str] = []
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["callId"] == "slow" and not release.is_set():
            await release.wait()
        seen.append(f"{body['callId']}:{body['sequence']}")
        return httpx.Response(200)

    await add_target(
        database,
        tenant_id,
        "https://hooks.example/rt",
        events=("transcript",),
        realtime={"policy": policy},
    )
    svc = DeliveryService(
        database,
        Settings(),
        Metrics(),
        options=FAST,
        transport_factory=lambda spec: httpx.MockTransport(handler),
    )
    await feed(svc, call_events("slow", tenant_id, utterances=2))
    await feed(svc, call_events("fast", tenant_id, utterances=3))
    await eventually(lambda: len(seen) == 3)
    assert seen == ["fast:1", "fast:2", "fast:3"]
    release.set()
    await eventually(lambda: len(seen) == 5 and svc.idle())
    await svc.stop()
    assert seen[3:] == ["slow:1", "slow:2"]
