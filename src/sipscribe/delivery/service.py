"""The delivery service: pipeline events in, webhooks, outbox rows and live-feed messages out.

Theory of operation. ``run`` consumes a *reliable* ``EventBus`` subscription downstream of the
redacting sink, so every event is already redacted and none is lost to a full queue. Each
event is

* published to the ``LiveFeed`` (WebSocket clients), never blocking;
* turned into a webhook for every target of the call's tenant subscribed to it (utterances as
  ``transcript``, ``call.started``, ``call.ended``, ``dtmf``). Targets with the
  ``at_least_once`` policy get an outbox row first (one transaction for all of them), so a
  crash cannot lose it; ``drop_oldest`` targets are served from memory only;
* on ``call.ended``, the start of a *pending bundle*: a ticker re-checks the store until the
  call's utterances are all stored and its summary (when the tenant has summaries on) is
  processed or failed, or until ``bundle_wait_s`` passes, then queues the completion bundle
  (JSON or vCon per target) in the outbox, in one transaction for every target.

Sending happens in *lanes*, one per (target, call): a lane sends its head, and only then the
next, so one call's events reach a receiver in order, while lanes of other calls proceed in
parallel up to the target's ``max_in_flight``. A ``drop_oldest`` job gets one attempt; when a
target's memory queue passes ``max_queue`` its oldest waiting jobs are dropped; both are
counted. An outbox job that fails is retried with backoff (``retry.next_attempt_at``) while
blocking its lane, until delivered or expired, then marked failed: the dead-letter list
``GET /webhooks/{id}/deliveries`` shows and ``…/redeliver`` re-queues.

A lane keeps at most ``lane_memory`` outbox jobs in memory; beyond that it *spills* (jobs
stay only in the database) and refills from the outbox in queue order. On ``start`` every lane
with pending rows is created spilled, which is how a restart resumes: the database is the
queue, memory is a window onto it. ``stop`` stops intake, lets due jobs finish for
``drain_s`` and leaves the rest pending for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import Counter, Histogram

from sipscribe.delivery.bundle import (
    RecordingContent,
    bundle_json,
    bundle_vcon,
    load_snapshot,
)
from sipscribe.delivery.errors import DeliveryError, TargetConfigError
from sipscribe.delivery.live import LiveFeed
from sipscribe.delivery.payloads import (
    WEBHOOK_EVENT,
    CallContext,
    event_payload,
    idempotency_key,
    live_message,
    summary_payload,
)
from sipscribe.delivery.retry import RetryPolicy, next_attempt_at
from sipscribe.delivery.ssrf import Resolver, system_resolver
from sipscribe.delivery.targets import TargetSpec, allows_private
from sipscribe.delivery.vcon import b64url
from sipscribe.delivery.webhooks import JSON, VCON_JSON, TargetClient
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    PipelineEvent,
    StreamStarted,
    UtteranceEvent,
)
from sipscribe.store import calls as call_store
from sipscribe.store import summaries as summary_store
from sipscribe.store import tenants as tenant_store
from sipscribe.store import utterances as utterance_store
from sipscribe.store import webhooks as outbox
from sipscribe.store.models import CallState, DeliveryRecord, SummaryState

if TYPE_CHECKING:
    from sipscribe.api.metrics import Metrics
    from sipscribe.config import Settings
    from sipscribe.store.db import Database

log = logging.getLogger(__name__)

DISPATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def summary_expected(tenant_settings: dict[str, Any] | None) -> bool:
    """Whether the tenant summarises every call (``{"summary": {"enabled": true}}``), so the
    bundle waits for the summary job."""
    if not isinstance(tenant_settings, dict):
        return False
    summary = tenant_settings.get("summary")
    return isinstance(summary, dict) and summary.get("enabled") is True


@dataclass(frozen=True)
class DeliveryOptions:
    """Tuning of the delivery service (the per-target settings live on the targets)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: How long a tenant's target list is reused before it is read again.
    target_cache_s: float = 2.0
    #: Longest wait after call end for its utterances to be stored and its summary done.
    bundle_wait_s: float = 600.0
    #: How often pending bundles are re-checked.
    bundle_check_s: float = 0.5
    #: Calls ended this long before ``start`` still get their bundle if none was queued.
    sweep_window_s: float = 86400.0
    #: Outbox jobs one lane keeps in memory before it spills to the database.
    lane_memory: int = 256
    #: How long ``stop`` lets due jobs finish.
    drain_s: float = 10.0
    #: The host name in vCon UUIDs (draft-ietf-vcon-vcon-core 4.1.2); default: this host.
    fqhn: str | None = None
    #: ``https://…/{call_id}…``: put recordings in vCons by reference (url + content_hash).
    recording_url_template: str | None = None
    #: Otherwise inline recordings up to this size (base64url); 0: leave the dialog empty.
    inline_recording_max_bytes: int = 0


@dataclass
class TargetStats:
    """Counters of one target since the service started."""

    delivered: int = 0
    failed_attempts: int = 0
    retried: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_delivered_at: str | None = None
    last_dispatch_ms: float | None = None

    def to_json(self, *, queued: int = 0) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "retried": self.retried,
            "dropped": self.dropped,
            "dead_lettered": self.dead_lettered,
            "queued": queued,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_delivered_at": self.last_delivered_at,
            "last_dispatch_ms": self.last_dispatch_ms,
        }


@dataclass(eq=False)
class Job:
    """One POST to make: memory-only (``delivery_id`` None) or an outbox row."""

    event_type: str
    payload: dict[str, Any]
    idempotency_key: str
    delivery_id: str | None
    expires_at: float | None
    attempts: int = 0
    not_before: float = 0.0
    #: perf_counter when the event reached the service (dispatch latency), None if recovered.
    arrived: float | None = None
    inflight: bool = False
    done: bool = False
    last_error: str | None = None

    @property
    def content_type(self) -> str:
        return VCON_JSON if self.event_type == "bundle" and "vcon" in self.payload else JSON

    @classmethod
    def of(cls, row: DeliveryRecord) -> Job:
        return cls(
            event_type=row.event_type,
            payload=row.payload,
            idempotency_key=row.idempotency_key,
            delivery_id=row.id,
            expires_at=None if row.expires_at is None else row.expires_at.timestamp(),
            attempts=row.attempts,
            not_before=0.0 if row.next_attempt_at is None else row.next_attempt_at.timestamp(),
            last_error=row.last_error,
        )


@dataclass(eq=False)
class Lane:
    target_id: str
    call_id: str | None
    queue: deque[Job] = field(default_factory=deque)
    #: Outbox ids in ``queue`` (or in flight), so a refill never loads one twice.
    known: set[str] = field(default_factory=set)
    spilled: bool = False
    spill_epoch: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.target_id, self.call_id)


@dataclass
class _Runtime:
    spec: TargetSpec
    client: TargetClient
    semaphore: asyncio.Semaphore
    inflight: int = 0
    retired: bool = False


@dataclass
class _PendingBundle:
    tenant_id: str
    deadline: float
    expected_utterances: int = 0


class DeliveryService:
    """Webhooks, completion bundles and the live feed; see the module docstring.

    ``clock`` is wall-clock unix seconds (outbox timestamps, expiry, signatures); tests may
    pass ``transport_factory`` (e.g. an ``httpx.MockTransport`` per target) and ``resolver``.
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        options: DeliveryOptions | None = None,
        feed: LiveFeed | None = None,
        resolver: Resolver = system_resolver,
        transport_factory: Callable[[TargetSpec], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.options = options or DeliveryOptions()
        self.feed = feed or LiveFeed()
        self.resolver = resolver
        self.transport_factory = transport_factory
        self._fqhn = self.options.fqhn or socket.getfqdn() or "sipscribe.invalid"
        self._calls: dict[str, CallContext] = {}
        self._bundles: dict[str, _PendingBundle] = {}
        self._lanes: dict[tuple[str, str | None], Lane] = {}
        self._memory_jobs: dict[str, deque[Job]] = {}
        self._stats: dict[str, TargetStats] = {}
        self._tenants: dict[str, tuple[float, list[TargetSpec], dict[str, Any]]] = {}
        self._specs: dict[str, tuple[float, TargetSpec | None]] = {}
        self._runtimes: dict[str, _Runtime] = {}
        self._last_db_time = datetime.fromtimestamp(0, UTC)
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._started = False
        self._dispatch, self._dropped = _metrics(metrics)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume lanes with pending outbox rows and re-check calls still owed a bundle."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        self._stop_event.clear()
        async with self.database.session() as session:
            lanes = await outbox.pending_lanes(session)
            since = self._db_time(self.clock() - self.options.sweep_window_s)
            awaiting = await outbox.calls_awaiting_bundle(session, ended_since=since)
        for target_id, call_id in lanes:
            lane = self._lane(target_id, call_id)
            lane.spilled = True
            self._kick(lane)
        for call_id, tenant_id in awaiting:
            self._bundles.setdefault(
                call_id, _PendingBundle(tenant_id, self.clock() + self.options.bundle_wait_s)
            )
        self._ticker = asyncio.create_task(self._tick(), name="delivery-bundles")
        if lanes or awaiting:
            log.info(
                "delivery resumed %d outbox lanes, %d calls awaiting a bundle",
                len(lanes),
                len(awaiting),
            )

    async def stop(self) -> None:
        """Stop intake, let due jobs finish for ``drain_s``, leave the rest in the outbox."""
        self._stopping = True
        self._stop_event.set()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.options.drain_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for runtime in list(self._runtimes.values()):
            await runtime.client.aclose()
        self._runtimes.clear()
        self._lanes.clear()
        self._started = False

    async def run(self, events: AsyncIterable[PipelineEvent]) -> None:
        """Handle every event of ``events`` (a reliable bus ``Subscription``) until it ends."""
        async for event in events:
            try:
                await self.handle(event)
            except Exception:  # one broken event must not stop delivery for everyone
                log.exception("delivery: handling %s of call %s failed", event.type, event.call_id)

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget cached targets (the API changed one); None: every tenant's."""
        if tenant_id is None:
            self._tenants.clear()
        else:
            self._tenants.pop(tenant_id, None)
        self._specs.clear()

    def resume(self, target_id: str, call_id: str | None) -> None:
        """Look for pending outbox rows of this lane (a delivery was re-queued)."""
        lane = self._lane(target_id, call_id)
        lane.spilled = True
        lane.spill_epoch += 1
        self._kick(lane)

    def stats(self, target_id: str) -> dict[str, Any]:
        stats = self._stats.get(target_id) or TargetStats()
        queued = sum(
            len(lane.queue) for lane in self._lanes.values() if lane.target_id == target_id
        )
        return stats.to_json(queued=queued)

    @property
    def pending_bundles(self) -> int:
        return len(self._bundles)

    def idle(self) -> bool:
        """No job in any lane (outbox rows may still wait in the database)."""
        return not any(lane.queue or lane.spilled for lane in self._lanes.values())

    # -- events ---------------------------------------------------------------------------

    async def handle(self, event: PipelineEvent) -> None:
        """Publish one pipeline event to the live feed and the webhooks that want it."""
        arrived = time.perf_counter()
        ctx = self._context(event)
        if isinstance(event, UtteranceEvent):
            ctx.last_sequence = max(ctx.last_sequence, event.utterance.sequence)
        self.feed.publish(
            event.call_id,
            live_message(event, ctx.last_sequence),
            final=isinstance(event, CallEnded),
        )
        kind = WEBHOOK_EVENT.get(event.type)
        if kind is not None and not self._stopping:
            tenant_id = await self._tenant_of(ctx)
            if tenant_id is not None:
                await self._realtime(event, ctx, kind, tenant_id, arrived)
        if isinstance(event, CallEnded):
            self._calls.pop(event.call_id, None)
            tenant_id = ctx.tenant_id or await self._tenant_of(ctx)
            if tenant_id is not None:
                self._bundles[event.call_id] = _PendingBundle(
                    tenant_id,
                    self.clock() + self.options.bundle_wait_s,
                    expected_utterances=event.utterances,
                )

    def _context(self, event: PipelineEvent) -> CallContext:
        ctx = self._calls.get(event.call_id)
        if ctx is None:
            ctx = self._calls[event.call_id] = CallContext(event.call_id)
        if isinstance(event, CallStarted):
            ctx.tenant_id = event.tenant_id or ctx.tenant_id
            ctx.external_id = event.external_id
            ctx.metadata = dict(event.metadata or {})
        elif isinstance(event, StreamStarted):
            ctx.streams[event.stream_id] = (event.role, event.label)
        return ctx

    async def _tenant_of(self, ctx: CallContext) -> str | None:
        """The call's tenant: from ``call.started``, else the store, else the default one."""
        if ctx.tenant_id is not None:
            return ctx.tenant_id
        async with self.database.session() as session:
            tenant_id = await outbox.tenant_of_call(session, call_id=ctx.call_id)
            if tenant_id is None:
                tenant = await tenant_store.get_tenant_by_name(
                    session, name=tenant_store.DEFAULT_TENANT_NAME
                )
                tenant_id = tenant.id if tenant is not None else None
        ctx.tenant_id = tenant_id
        return tenant_id

    async def _realtime(
        self, event: PipelineEvent, ctx: CallContext, kind: str, tenant_id: str, arrived: float
    ) -> None:
        targets = [t for t in await self._targets(tenant_id) if t.wants(kind)]
        if not targets:
            return
        payload = event_payload(event, ctx)
        key = idempotency_key(event)
        now = self.clock()
        persistent = [t for t in targets if t.persistent_realtime]
        # Memory-only targets first: their POST should not wait for the outbox write.
        for target in targets:
            if not target.persistent_realtime:
                expires = now + target.options.realtime.max_age_s
                self._enqueue(
                    target, event.call_id, Job(kind, payload, key, None, expires, arrived=arrived)
                )
        if not persistent:
            return
        try:
            rows = await self._add_outbox(
                tenant_id=tenant_id,
                event_type=kind,
                payloads={t.id: payload for t in persistent},
                key=key,
                call_id=event.call_id,
                expires={t.id: now + t.options.realtime.max_age_s for t in persistent},
            )
        except Exception:
            # Without the outbox it cannot be at-least-once; still try it once.
            log.exception("delivery: outbox write for %s of call %s failed", kind, ctx.call_id)
            for target in persistent:
                expires = now + target.options.realtime.max_age_s
                self._enqueue(
                    target, event.call_id, Job(kind, payload, key, None, expires, arrived=arrived)
                )
            return
        for target in persistent:
            row = rows.get(target.id)
            if row is None:
                continue  # queued before (the event was replayed)
            expires = now + target.options.realtime.max_age_s
            self._enqueue(
                target, event.call_id, Job(kind, payload, key, row.id, expires, arrived=arrived)
            )

    async def on_summary_ready(self, call_id: str) -> None:
        """Hook for the summary job (processed or failed): sends ``summary.ready`` and lets the
        call's completion bundle go if it was waiting for the summary."""
        async with self.database.session() as session:
            tenant_id = await outbox.tenant_of_call(session, call_id=call_id)
            if tenant_id is None:
                return
            summary = await summary_store.get_summary(session, call_id=call_id, tenant_id=tenant_id)
            call = await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
        if summary is None or call is None or summary.state == SummaryState.CREATED.value:
            return
        targets = [t for t in await self._targets(tenant_id) if t.wants("summary.ready")]
        if targets:
            now = self.clock()
            payload = summary_payload(
                call_id=call_id,
                external_id=call.external_id,
                state=summary.state,
                result=summary.result,
                error=summary.error,
            )
            rows = await self._add_outbox(
                tenant_id=tenant_id,
                event_type="summary.ready",
                payloads={t.id: payload for t in targets},
                key=f"summary.ready:{call_id}:{summary.id}",
                call_id=call_id,
                expires={t.id: now + t.options.bundle_max_age_s for t in targets},
            )
            self._enqueue_rows(targets, call_id, rows)
        if call.state != CallState.ACTIVE.value and call_id not in self._bundles:
            queued = await self._bundle_queued(call_id)
            if not queued:
                self._bundles[call_id] = _PendingBundle(tenant_id, self.clock())
        pending = self._bundles.get(call_id)
        if pending is None:
            return
        try:
            done = await self._try_bundle(call_id, pending)
        except Exception:  # e.g. the ticker queued it at the same moment; it retries
            log.exception("delivery: bundle of call %s failed; the ticker retries", call_id)
            return
        if done:
            self._bundles.pop(call_id, None)

    # -- bundles --------------------------------------------------------------------------

    async def _tick(self) -> None:
        while not self._stopping:
            try:
                await self.check_bundles()
            except Exception:
                log.exception("delivery: checking pending bundles failed")
            await asyncio.sleep(self.options.bundle_check_s)

    async def check_bundles(self) -> None:
        """Queue every pending bundle whose call is ready (or waited long enough)."""
        for call_id, pending in list(self._bundles.items()):
            try:
                done = await self._try_bundle(call_id, pending)
            except Exception:
                log.exception("delivery: bundle of call %s failed", call_id)
                done = self.clock() > pending.deadline
            if done:
                self._bundles.pop(call_id, None)

    async def _bundle_queued(self, call_id: str) -> bool:
        from sqlalchemy import select

        async with self.database.session() as session:
            result = await session.execute(
                select(DeliveryRecord.id)
                .where(DeliveryRecord.call_id == call_id, DeliveryRecord.event_type == "bundle")
                .limit(1)
            )
            return result.first() is not None

    async def _try_bundle(self, call_id: str, pending: _PendingBundle) -> bool:
        """Queue the bundle if the call is ready; True when done with it (queued or given up)."""
        targets = [t for t in await self._targets(pending.tenant_id) if t.wants("bundle")]
        if not targets:
            return True
        late = self.clock() >= pending.deadline
        tenant_id = pending.tenant_id
        async with self.database.session() as session:
            call = await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
            if call is None:
                if late:
                    log.error("delivery: call %s never reached the store; no bundle", call_id)
                return late
            if not late:
                if call.state == CallState.ACTIVE.value:
                    return False
                stored = await utterance_store.count_utterances(
                    session, call_id=call_id, tenant_id=tenant_id
                )
                if stored < pending.expected_utterances:
                    return False
                summary = await summary_store.get_summary(
                    session, call_id=call_id, tenant_id=tenant_id
                )
                if summary is not None and summary.state == SummaryState.CREATED.value:
                    return False
                if summary is None and summary_expected(self._tenant_settings(tenant_id)):
                    return False
            snap = await load_snapshot(session, call_id=call_id, tenant_id=tenant_id)
        if snap is None:
            return True
        if late:
            log.warning("delivery: bundle of call %s sent after waiting its limit", call_id)
        payloads: dict[str, dict[str, Any]] = {}
        as_json: dict[str, Any] | None = None
        as_vcon: dict[str, Any] | None = None
        for target in targets:
            if target.options.format == "vcon":
                if as_vcon is None:
                    recording = await asyncio.to_thread(self._recording_content, snap)
                    as_vcon = bundle_vcon(
                        snap,
                        created_at=datetime.fromtimestamp(self.clock(), UTC),
                        fqhn=self._fqhn,
                        recording=recording,
                    )
                payloads[target.id] = as_vcon
            else:
                if as_json is None:
                    as_json = bundle_json(snap)
                payloads[target.id] = as_json
        now = self.clock()
        rows = await self._add_outbox(
            tenant_id=tenant_id,
            event_type="bundle",
            payloads=payloads,
            key=f"bundle:{call_id}",
            call_id=call_id,
            expires={t.id: now + t.options.bundle_max_age_s for t in targets},
        )
        self._enqueue_rows(targets, call_id, rows)
        return True

    def _recording_content(self, snap: Any) -> RecordingContent | None:
        """The recording for a vCon dialog (by reference or inline), read off the event loop."""
        path = Path(snap.recording_path) if snap.recording_path else None
        if path is None or not path.is_file():
            return None
        mediatype = _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        template = self.options.recording_url_template
        if template:
            import hashlib

            digest = hashlib.sha512()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            return RecordingContent(
                mediatype=mediatype,
                filename=path.name,
                url=template.format(call_id=snap.call_id),
                content_hash="sha512-" + b64url(digest.digest()),
            )
        limit = self.options.inline_recording_max_bytes
        if limit and path.stat().st_size <= limit:
            data = path.read_bytes()
            return RecordingContent(mediatype=mediatype, filename=path.name, body=b64url(data))
        return None

    # -- outbox and lanes -----------------------------------------------------------------

    def _db_time(self, unix: float) -> datetime:
        return datetime.fromtimestamp(unix, UTC)

    def _db_now(self) -> datetime:
        """Wall clock, but strictly increasing: outbox rows of a lane sort by creation time."""
        now = self._db_time(self.clock())
        if now <= self._last_db_time:
            now = self._last_db_time + timedelta(microseconds=1)
        self._last_db_time = now
        return now

    async def _add_outbox(
        self,
        *,
        tenant_id: str,
        event_type: str,
        payloads: dict[str, dict[str, Any]],
        key: str,
        call_id: str | None,
        expires: dict[str, float],
    ) -> dict[str, DeliveryRecord]:
        async with self.database.session() as session:
            added = await outbox.add_deliveries(
                session,
                tenant_id=tenant_id,
                event_type=event_type,
                payloads=payloads,
                idempotency_key=key,
                call_id=call_id,
                expires_at={tid: self._db_time(at) for tid, at in expires.items()},
                now=self._db_now(),
            )
            await session.commit()
        return {row.target_id: row for row in added}

    def _enqueue_rows(
        self, targets: list[TargetSpec], call_id: str, rows: dict[str, DeliveryRecord]
    ) -> None:
        for target in targets:
            row = rows.get(target.id)
            if row is not None:
                self._enqueue(target, call_id, Job.of(row))

    def _lane(self, target_id: str, call_id: str | None) -> Lane:
        lane = self._lanes.get((target_id, call_id))
        if lane is None:
            lane = self._lanes[(target_id, call_id)] = Lane(target_id, call_id)
        return lane

    def _kick(self, lane: Lane) -> None:
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._work(lane), name=f"delivery-lane-{lane.key}")

    def _stats_of(self, target_id: str) -> TargetStats:
        stats = self._stats.get(target_id)
        if stats is None:
            stats = self._stats[target_id] = TargetStats()
        return stats

    def _enqueue(self, target: TargetSpec, call_id: str | None, job: Job) -> None:
        lane = self._lane(target.id, call_id)
        if job.delivery_id is None:
            memory = self._memory_jobs.setdefault(target.id, deque())
            while memory and memory[0].done:
                memory.popleft()
            waiting = sum(1 for j in memory if not j.done and not j.inflight)
            limit = target.options.realtime.max_queue
            if waiting >= limit:
                for old in memory:
                    if not old.done and not old.inflight:
                        old.done = True
                        self._drop(target.id, "queue full")
                        break
            memory.append(job)
            lane.queue.append(job)
        elif lane.spilled or len(lane.known) >= self.options.lane_memory:
            lane.spilled = True
            lane.spill_epoch += 1
        else:
            lane.queue.append(job)
            lane.known.add(job.delivery_id)
        self._kick(lane)

    def _drop(self, target_id: str, why: str) -> None:
        stats = self._stats_of(target_id)
        stats.dropped += 1
        self._dropped.inc()
        if stats.dropped == 1 or stats.dropped % 100 == 0:
            log.warning("webhook target %s: %d events dropped (%s)", target_id, stats.dropped, why)

    async def _refill(self, lane: Lane) -> None:
        epoch = lane.spill_epoch
        limit = self.options.lane_memory
        async with self.database.session() as session:
            rows = await outbox.pending_in_lane(
                session, target_id=lane.target_id, call_id=lane.call_id, limit=limit
            )
        for row in rows:
            if row.id not in lane.known:
                lane.queue.append(Job.of(row))
                lane.known.add(row.id)
        if len(rows) < limit and lane.spill_epoch == epoch:
            lane.spilled = False

    async def _work(self, lane: Lane) -> None:
        """One lane's sender: head first, in order; ends when the lane is empty."""
        while True:
            try:
                if not await self._step(lane):
                    break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery lane %s failed; retrying", lane.key)
                await self._pause(1.0)
                if self._stopping:
                    break
        if self._lanes.get(lane.key) is lane and not lane.queue and not lane.spilled:
            del self._lanes[lane.key]

    async def _step(self, lane: Lane) -> bool:
        """Do one thing for the lane; False when there is nothing left (or we are stopping)."""
        if not lane.queue:
            if lane.spilled and not self._stopping:
                await self._refill(lane)
                return bool(lane.queue) or lane.spilled
            return False
        job = lane.queue[0]
        if job.done:
            lane.queue.popleft()
            return True
        runtime = await self._runtime(lane.target_id)
        if runtime is None:
            # Deleted or disabled: memory jobs go, outbox rows stay for a re-enable.
            for queued in lane.queue:
                if queued.delivery_id is None and not queued.done:
                    queued.done = True
                    self._drop(lane.target_id, "target disabled")
            lane.queue.clear()
            lane.known.clear()
            lane.spilled = False
            return False
        now = self.clock()
        if job.expires_at is not None and now >= job.expires_at:
            await self._give_up(lane, job, "expired before it could be delivered")
            return True
        if job.not_before > now:
            if self._stopping:
                return False
            await self._pause(job.not_before - now)
            return True
        await self._attempt(runtime, lane, job)
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), timeout=max(0.0, seconds))

    async def _give_up(self, lane: Lane, job: Job, why: str) -> None:
        lane.queue.popleft()
        job.done = True
        if job.delivery_id is None:
            self._drop(lane.target_id, why)
            return
        if job.last_error:
            why = f"{why} (after {job.attempts} attempts; last: {job.last_error})"
        async with self.database.session() as session:
            await outbox.expire_delivery(session, delivery_id=job.delivery_id, error=why)
        lane.known.discard(job.delivery_id)
        self._stats_of(lane.target_id).dead_lettered += 1

    async def _attempt(self, runtime: _Runtime, lane: Lane, job: Job) -> None:
        stats = self._stats_of(lane.target_id)
        body = json.dumps(job.payload, separators=(",", ":"), ensure_ascii=False).encode()
        job.inflight = True
        runtime.inflight += 1
        try:
            async with runtime.semaphore:
                if job.arrived is not None:
                    waited = time.perf_counter() - job.arrived
                    self._dispatch.observe(waited)
                    stats.last_dispatch_ms = round(waited * 1000, 3)
                    job.arrived = None  # retries are not dispatch latency
                outcome = await runtime.client.post(
                    body,
                    event_type=job.event_type,
                    idempotency_key=job.idempotency_key,
                    delivery_id=job.delivery_id,
                    timestamp=int(self.clock()),
                    content_type=job.content_type,
                )
        except DeliveryError as exc:
            job.attempts += 1
            await self._failed(lane, job, exc)
        else:
            lane.queue.popleft()
            job.done = True
            stats.delivered += 1
            stats.last_status = outcome.status
            stats.last_delivered_at = datetime.now(UTC).isoformat()
            self.metrics.webhook_deliveries.inc()
            if job.delivery_id is not None:
                try:
                    async with self.database.session() as session:
                        await outbox.record_delivery_success(
                            session, delivery_id=job.delivery_id, now=self._db_now()
                        )
                finally:
                    lane.known.discard(job.delivery_id)
        finally:
            job.inflight = False
            runtime.inflight -= 1
            if runtime.retired and runtime.inflight == 0:
                await runtime.client.aclose()

    async def _failed(self, lane: Lane, job: Job, exc: DeliveryError) -> None:
        stats = self._stats_of(lane.target_id)
        stats.failed_attempts += 1
        stats.last_error = job.last_error = str(exc)
        stats.last_status = getattr(exc, "status", None)
        self.metrics.webhook_failures.inc()
        if job.delivery_id is None:
            lane.queue.popleft()
            job.done = True
            self._drop(lane.target_id, f"delivery failed: {exc}")
            return
        when = None
        if exc.retryable:
            when = next_attempt_at(
                job.attempts,
                now=self.clock(),
                expires_at=job.expires_at,
                policy=self.options.retry,
                retry_after=getattr(exc, "retry_after", None),
            )
        async with self.database.session() as session:
            await outbox.record_delivery_failure(
                session,
                delivery_id=job.delivery_id,
                error=str(exc),
                next_attempt_at=None if when is None else self._db_time(when),
            )
        if when is None:
            lane.queue.popleft()
            job.done = True
            lane.known.discard(job.delivery_id)
            stats.dead_lettered += 1
            log.warning(
                "webhook %s to target %s dead-lettered after %d attempts: %s",
                job.idempotency_key,
                lane.target_id,
                job.attempts,
                exc,
            )
        else:
            job.not_before = when
            stats.retried += 1

    # -- targets --------------------------------------------------------------------------

    async def _targets(self, tenant_id: str) -> list[TargetSpec]:
        """The tenant's enabled targets (cached for ``target_cache_s``)."""
        cached = self._tenants.get(tenant_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.database.session() as session:
            tenant = await tenant_store.get_tenant(session, tenant_id=tenant_id)
            records = await outbox.list_webhook_targets(
                session, tenant_id=tenant_id, enabled_only=True
            )
        settings = dict(tenant.settings or {}) if tenant is not None else {}
        allow = allows_private(settings)
        specs: list[TargetSpec] = []
        for record in records:
            try:
                specs.append(TargetSpec.of(record, allow_private=allow))
            except TargetConfigError as exc:
                log.error("webhook target %s has unusable options: %s", record.id, exc)
        self._tenants[tenant_id] = (now + self.options.target_cache_s, specs, settings)
        for spec in specs:
            self._specs[spec.id] = (now + self.options.target_cache_s, spec)
        return specs

    def _tenant_settings(self, tenant_id: str) -> dict[str, Any]:
        cached = self._tenants.get(tenant_id)
        return cached[2] if cached is not None else {}

    async def _spec(self, target_id: str) -> TargetSpec | None:
        cached = self._specs.get(target_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.database.session() as session:
            found = await outbox.target_for_delivery(session, target_id=target_id)
        spec: TargetSpec | None = None
        if found is not None:
            record, settings = found
            try:
                spec = TargetSpec.of(record, allow_private=allows_private(settings))
            except TargetConfigError as exc:
                log.error("webhook target %s has unusable options: %s", target_id, exc)
        self._specs[target_id] = (now + self.options.target_cache_s, spec)
        return spec

    async def _runtime(self, target_id: str) -> _Runtime | None:
        """The target's HTTP client, rebuilt when its settings changed; None if it is gone
        or disabled."""
        spec = await self._spec(target_id)
        runtime = self._runtimes.get(target_id)
        if spec is None or not spec.enabled:
            if runtime is not None:
                self._retire(runtime)
                del self._runtimes[target_id]
            return None
        if runtime is not None and runtime.spec.fingerprint == spec.fingerprint:
            return runtime
        if runtime is not None:
            self._retire(runtime)
        transport = self.transport_factory(spec) if self.transport_factory else None
        client = TargetClient(spec, transport=transport, resolver=self.resolver)
        runtime = _Runtime(spec, client, asyncio.Semaphore(spec.options.max_in_flight))
        self._runtimes[target_id] = runtime
        return runtime

    def _retire(self, runtime: _Runtime) -> None:
        runtime.retired = True
        if runtime.inflight == 0:
            task = asyncio.create_task(runtime.client.aclose())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)


_MEDIA_TYPES = {
    ".wav": "audio/x-wav",
    ".mp3": "audio/x-mp3",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/x-mp4",
    ".mp4": "audio/x-mp4",
    ".flac": "audio/flac",
    ".webm": "audio/webm",
}


def _metrics(metrics: Metrics) -> tuple[Histogram, Counter]:
    """Delivery's own metrics, registered once per ``Metrics`` registry."""
    existing = getattr(metrics, "_delivery_metrics", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    dispatch = Histogram(
        "sipscribe_webhook_dispatch_seconds",
        "Time from a pipeline event reaching delivery to its webhook POST starting.",
        buckets=DISPATCH_BUCKETS,
        registry=metrics.registry,
    )
    dropped = Counter(
        "sipscribe_webhook_dropped",
        "Real-time webhooks dropped (drop_oldest policy: failed, stale or queue full).",
        registry=metrics.registry,
    )
    metrics._delivery_metrics = (dispatch, dropped)  # type: ignore[attr-defined]
    return dispatch, dropped


__all__ = ["DeliveryOptions", "DeliveryService", "LiveFeed", "TargetStats", "summary_expected"]
