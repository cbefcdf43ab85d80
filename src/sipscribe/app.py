"""The composition root: ``sipscribe serve`` starts SIP, RTP, the HTTP API and workers.

One process, one event loop. The ASR model loads once; one ``AsrPool`` serves every call
and upload. Pipeline events go to a *raw* bus whose only subscriber is the redaction
sink; everything that stores or sends text (store, delivery, live feeds) subscribes to
the *public* bus behind it, so nothing unredacted leaves by construction.

SIGTERM drains: new INVITEs get 503, active calls get a bounded time to finish, then
are ended with their last utterances recognised and stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from sipscribe.config import Settings

log = logging.getLogger("sipscribe")


@dataclass
class Server:
    """Everything ``serve`` runs; ``start``/``stop`` are also used by the tests."""

    settings: Settings
    http_port: int | None = None
    sip_port: int | None = None
    sip_tls_port: int | None = None
    admin_key: str | None = None
    _closers: list[Any] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self, *, engine: Any | None = None) -> None:
        import uvicorn

        from sipscribe.api.main import create_app
        from sipscribe.api.metrics import Metrics
        from sipscribe.api.routes import asr as asr_routes
        from sipscribe.api.routes import connect, conversations, exports, llms, webhooks
        from sipscribe.api.services import AppServices
        from sipscribe.asr.pool import AsrPool, load_in_low_priority_thread
        from sipscribe.asr.whisper import WhisperEngine
        from sipscribe.delivery.service import DeliveryService
        from sipscribe.dialout.manager import Dialer
        from sipscribe.intelligence.recording_redactor import RecordingRedactor
        from sipscribe.intelligence.redacting_sink import RedactingSink
        from sipscribe.media.ports import PortAllocator
        from sipscribe.pipeline.bus import EventBus
        from sipscribe.pipeline.call import PipelineContext
        from sipscribe.pipeline.endpointer import EndpointerConfig
        from sipscribe.recorder import Admission, Recorder
        from sipscribe.sip.endpoint import EndpointConfig, SipEndpoint
        from sipscribe.sip.transport import SipTransport
        from sipscribe.siprec.roles import RoleConfig
        from sipscribe.siprec.session import SrsConfig
        from sipscribe.store import keys as keys_q
        from sipscribe.store import tenants as tenants_q
        from sipscribe.store.db import init_db
        from sipscribe.store.sink import StoreSink
        from sipscribe.uploads import UploadTranscriber

        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        metrics = Metrics()

        database = await init_db(s)
        self._closers.append(database.dispose)
        async with database.session() as session:
            created = await keys_q.bootstrap_admin_key(session)
            tenant = await tenants_q.get_or_create_tenant(
                session, name=getattr(s, "sip_tenant", "default")
            )
            tenant_id = tenant.id
        if created is not None:
            self.admin_key = created[1]

        if engine is None:
            engine = await load_in_low_priority_thread(
                lambda: WhisperEngine.from_settings(s), s.asr_nice
            )
        pool = AsrPool(
            engine,
            workers=s.asr_workers,
            max_batch=s.asr_max_batch,
            warn_backlog_s=s.asr_warn_backlog_s,
            nice=s.asr_nice,
            on_depth=lambda n, _backlog: metrics.asr_queue_depth.set(n),
        )
        await pool.start()
        self._closers.append(lambda: pool.stop(drain=True))

        raw_bus, public_bus = EventBus(), EventBus()
        redactor = RedactingSink(public_bus)
        store_sink = StoreSink(database, default_tenant_id=tenant_id)
        self._tasks.append(
            asyncio.create_task(
                redactor.run(raw_bus.subscribe("redaction", reliable=True)), name="redaction"
            )
        )
        self._tasks.append(
            asyncio.create_task(
                store_sink.run(public_bus.subscribe("store", reliable=True)), name="store"
            )
        )
        if getattr(s, "record_audio", False):
            recording_redactor = RecordingRedactor()
            self._tasks.append(
                asyncio.create_task(
                    recording_redactor.run(public_bus.subscribe("recordings", reliable=True)),
                    name="recordings",
                )
            )
        delivery = DeliveryService(database, s, metrics)
        await delivery.start()
        self._closers.append(delivery.stop)
        self._tasks.append(
            asyncio.create_task(
                delivery.run(public_bus.subscribe("delivery", reliable=True)), name="delivery"
            )
        )
        self.delivery = delivery

        endpointer = EndpointerConfig.from_settings(s)
        ctx = PipelineContext(
            pool=pool,
            bus=raw_bus,
            endpointer=endpointer,
            language=s.asr_language,
            recordings_dir=(s.data_dir / "recordings")
            if getattr(s, "record_audio", False)
            else None,
            on_latency=metrics.utterance_latency.observe,
        )
        allocator = PortAllocator(s.rtp_port_min, s.rtp_port_max)
        sip_host = s.sip_host if s.sip_host not in ("0.0.0.0", "::") else "127.0.0.1"
        endpoint = SipEndpoint(
            EndpointConfig(host=getattr(s, "sip_advertise", None) or sip_host, port=s.sip_port)
        )

        def on_streams(calls: int, streams: int) -> None:
            metrics.active_calls.set(calls)
            metrics.active_streams.set(streams)

        recorder = Recorder(
            endpoint=endpoint,
            ctx=ctx,
            allocator=allocator,
            srs=SrsConfig(
                record_plain_calls=s.record_plain_calls,
                roles=RoleConfig(
                    calling_party_role=s.calling_party_role,
                    agent_aor_patterns=tuple(s.agent_aor_patterns),
                    customer_aor_patterns=tuple(s.customer_aor_patterns),
                    fallback_order=s.media_line_fallback,
                ),
            ),
            admission=Admission.from_settings(s),
            media_host=s.rtp_host,
            media_address=getattr(s, "rtp_advertise", None),
            auto_start=s.auto_start,
            tenant_for=lambda _sess, _peer: tenant_id,
            jitter_depth_ms=s.jitter_buffer_ms,
            on_streams=on_streams,
        )
        dialer = Dialer(
            endpoint=endpoint,
            ctx=ctx,
            allocator=allocator,
            settings=s,
            media_host=s.rtp_host,
            media_address=getattr(s, "rtp_advertise", None),
            on_change=metrics.active_connections.set,
        )

        def on_sip_event(event: Any) -> None:
            """Our dialled calls' events go to the dialer, everything else to the SRS."""
            if dialer.owns(event):
                dialer.on_event(event)
            else:
                recorder.on_event(event)

        transport = SipTransport(endpoint, on_sip_event)
        await transport.listen(
            s.sip_host, s.sip_port, tls_port=s.sip_tls_port, tls_context=s.sip_tls_context()
        )
        self.sip_tls_port = transport.tls_port
        transport.client_tls_context = s.sip_client_tls_context()
        recorder.pump = transport.pump
        dialer.pump = transport.pump
        self.dialer = dialer
        self.sip_port = transport.udp_port
        self.recorder = recorder
        self._closers.append(transport.close)

        services = AppServices(
            database=database,
            transcription_runner=UploadTranscriber(
                pool=pool,
                bus=raw_bus,
                public_bus=public_bus,  # its redaction spans silence the stored upload
                store=store_sink,
                endpointer=endpointer,
                language=s.asr_language,
            ),
            metrics=metrics,
        )
        services.streaming = recorder  # type: ignore[attr-defined]
        services.dialer = dialer  # type: ignore[attr-defined]
        services.asr_engine = engine  # type: ignore[attr-defined]
        self._setup_intelligence(services)
        services.on_summary_done = delivery.on_summary_ready
        from sipscribe.dialout.actions import make_stop_actions

        dialer.stop_actions = make_stop_actions(services, store_sink, s)
        from functools import partial

        from sipscribe.api.jobs import run_summary
        from sipscribe.intelligence.auto_summary import AutoSummarizer

        # Tenants with {"summary": {"enabled": true}} get every ended call summarised.
        auto_summary = AutoSummarizer(database, partial(run_summary, services))
        self._tasks.append(
            asyncio.create_task(
                auto_summary.run(public_bus.subscribe("auto-summary", reliable=True)),
                name="auto-summary",
            )
        )
        self.auto_summary = auto_summary
        app = create_app(
            s,
            services=services,
            extra_routers=[
                webhooks.router,
                exports.router,
                conversations.router,
                llms.router,
                asr_routes.router,
                connect.router,
            ],
        )
        app.state.delivery = delivery
        _alias_bare_paths(app, [webhooks.router, exports.router])
        config = uvicorn.Config(
            app,
            host=s.http_host,
            port=s.http_port,
            log_config=None,
            lifespan="off",
            access_log=False,
        )
        http = uvicorn.Server(config)
        http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._http = http
        self._tasks.append(asyncio.create_task(http.serve(), name="http"))
        for _ in range(500):
            if http.started:
                break
            await asyncio.sleep(0.01)
        if not http.started:
            raise RuntimeError(f"HTTP server did not start on {s.http_host}:{s.http_port}")
        self.http_port = http.servers[0].sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._retention(database), name="retention"))
        self._tasks.append(asyncio.create_task(self._media_metrics(metrics), name="metrics"))
        self.services = services
        self.buses = (raw_bus, public_bus)
        self.store_sink = store_sink
        self.pool = pool
        from sipscribe.gctune import tune_gc  # start-up is over: freeze it, before any call

        self.gc_tuning = tune_gc(s, pause_histogram=metrics.gc_pause)
        self._closers.append(self.gc_tuning.restore)
        services.ready = True
        log.info(
            "sipscribe ready: HTTP %s:%s, SIP %s:%s (UDP/TCP), RTP %d-%d",
            s.http_host,
            self.http_port,
            s.sip_host,
            self.sip_port,
            s.rtp_port_min,
            s.rtp_port_max,
        )

    def _setup_intelligence(self, services: Any) -> None:
        """The summary engine: the configured language model, else the extractive fallback.

        The llama backend's worker process (low priority) starts on first use, so this is
        cheap; a missing model is logged once and summaries fall back, never fail to start.
        """
        from sipscribe.intelligence.analyzer import Analyzer
        from sipscribe.intelligence.llm import build_backend

        try:
            backend = build_backend(self.settings)
        except Exception as exc:
            log.warning("no language model (%s): summaries use the extractive fallback", exc)
            return
        if backend is None:
            log.info("llm_backend is 'none': summaries use the extractive fallback")
            return
        analyzer = Analyzer.from_settings(self.settings, backend)
        services.summary_engine = analyzer
        services.llm_backend = backend
        self._closers.append(analyzer.aclose)

    async def _media_metrics(self, metrics: Any, interval: float = 2.0) -> None:
        """Fold every live stream's RTP counters (recorded and dialled calls) into the
        Prometheus metrics."""
        seen: dict[int, tuple[int, int]] = {}
        while True:
            await asyncio.sleep(interval)
            alive: set[int] = set()
            streams = [
                live.endpoint.stream
                for call in list(self.recorder.calls.values())
                for live in list(call.streams.values())
            ]
            dialer = getattr(self, "dialer", None)
            if dialer is not None:
                streams += [c.media.stream for c in list(dialer.connections.values())]
            for stream in streams:
                if stream is None:
                    continue
                key = id(stream)
                alive.add(key)
                st = stream.stats
                packets, lost = seen.get(key, (0, 0))
                metrics.rtp_packets.inc(max(0, st.packets - packets))
                metrics.rtp_packets_lost.inc(max(0, st.lost - lost))
                seen[key] = (st.packets, st.lost)
                metrics.rtp_jitter.set(st.jitter_ms / 1000)
                metrics.rtp_jitter_histogram.observe(st.jitter_ms / 1000)
            for key in set(seen) - alive:
                del seen[key]

    async def _retention(self, database: Any) -> None:
        from sipscribe.store.retention import apply_retention

        while True:
            try:
                await apply_retention(
                    database,
                    retention_days=self.settings.retention_days,
                    recordings_root=self.settings.data_dir / "recordings",
                )
            except Exception:
                log.exception("retention job failed")
            await asyncio.sleep(3600)

    async def stop(self, *, drain_timeout: float = 30.0) -> None:
        """Drain: refuse new calls, let active ones finish (bounded), lose nothing."""
        services = getattr(self, "services", None)
        if services is not None:
            services.ready = False
        recorder = getattr(self, "recorder", None)
        dialer = getattr(self, "dialer", None)
        drains = [recorder.drain(drain_timeout)] if recorder is not None else []
        if dialer is not None:  # we placed these calls: hang up, keep what was said
            drains.append(asyncio.wait_for(dialer.drain(drain_timeout), drain_timeout + 5))
        for result in await asyncio.gather(*drains, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("draining failed: %r", result)
        if services is not None:
            await services.aclose(drain_timeout)
        if hasattr(self, "buses"):
            await self.buses[0].close()
        for task in self._tasks:
            if task.get_name() in ("redaction",):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(task, 30)
        if hasattr(self, "buses"):
            await self.buses[1].close()
        for task in self._tasks:
            if task.get_name() in ("store", "delivery", "recordings", "auto-summary"):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(task, 30)
        http = getattr(self, "_http", None)
        if http is not None:
            http.should_exit = True
        for task in self._tasks:
            if not task.done() and task.get_name() in ("retention", "metrics"):
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for close in reversed(self._closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result


def _alias_bare_paths(app: Any, routers: list[Any]) -> None:
    """Also answer ``/webhooks…`` and ``/exports…`` (the paths the delivery convention
    names) besides their ``/api/v2/…`` homes; same handlers, same auth."""
    from fastapi.routing import APIRoute

    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path.startswith("/api/v2/"):
                app.add_api_route(
                    route.path.removeprefix("/api/v2"),
                    route.endpoint,
                    methods=sorted(route.methods),
                    status_code=route.status_code,
                    response_model=route.response_model,
                    name=f"{route.name}_bare",
                    include_in_schema=False,
                )


async def serve(settings: Settings) -> int:
    from sipscribe import logs

    logs.configure(settings.log_level, settings.log_format)
    server = Server(settings)
    try:
        await server.start()
    except OSError as exc:
        print(f"sipscribe: error: cannot start: {exc}", file=sys.stderr)
        await server.stop(drain_timeout=0)
        return 2
    if server.admin_key:
        print(server.admin_key, flush=True)
        print(
            "sipscribe: first start: the line above is the admin API key; it is shown once "
            "(send it as 'Authorization: Bearer <key>')",
            file=sys.stderr,
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining active calls")
    await server.stop(drain_timeout=float(getattr(settings, "drain_timeout_s", 30.0)))
    return 0


def run(settings: Settings) -> int:
    return asyncio.run(serve(settings))
