"""The SIPREC Session Recording Server: SIP events in, recorded and transcribed calls out.

This module is a composition layer: it joins the sans-I/O SIP endpoint (``sip``), the
recording-session logic (``siprec``), the RTP edge (``media``) and the call pipelines
(``pipeline``). Per INVITE it validates the recording request, binds one RTP port pair
per offered audio m-line, answers, and starts a ``CallPipeline`` whose streams are fed by
``MediaStream``s. re-INVITE/UPDATE apply hold/resume and stream changes; BYE flushes
every stream and ends the call only after its last utterance.

Transcription of a call runs while *streaming is enabled* and the stream is not on hold:
with ``auto_start`` it is enabled from the first packet, otherwise a start-streaming
request (``start_streaming``) enables it and stop-streaming disables it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sipscribe.media.ports import PortAllocator, PortsExhausted
from sipscribe.media.srtp import CryptoAttribute
from sipscribe.media.stream import (
    MediaEndpoint,
    MediaStream,
    MediaStreamConfig,
    PayloadFormat,
    output_rate,
)
from sipscribe.pipeline.call import CallPipeline, PipelineContext, StreamPipeline
from sipscribe.pipeline.events import CallUpdated
from sipscribe.sip.endpoint import SipEndpoint
from sipscribe.sip.events import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    ParseFailed,
    Peer,
    RequestReceived,
    SessionExpired,
    SipEvent,
    TransactionTimedOut,
)
from sipscribe.siprec.answer import AcceptedStream
from sipscribe.siprec.errors import SiprecError
from sipscribe.siprec.session import RecordingSession, SrsConfig

log = logging.getLogger("sipscribe.recorder")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
ACCEPT = "application/sdp, multipart/mixed, application/rs-metadata+xml"


class StreamingError(Exception):
    """A start/stop-streaming request that cannot be applied; ``code`` is the API's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class LiveStream:
    mline_index: int
    endpoint: MediaEndpoint
    pipeline: StreamPipeline
    accepted: AcceptedStream


@dataclass
class LiveCall:
    call_id: str
    tenant_id: str | None
    session: RecordingSession
    sip_call_id: str
    source: Peer
    pipeline: CallPipeline
    streams: dict[int, LiveStream] = field(default_factory=dict)
    dialog_id: str | None = None
    streaming: bool = True
    ending: bool = False
    pending: str | None = None  # a start/stop request being applied
    started_monotonic: float = field(default_factory=time.monotonic)
    #: From start-streaming: the parties' ids in the user's systems, and the output mode.
    customer_id: str | None = None
    agent_id: str | None = None
    redaction_output: str = "redacted"

    @property
    def external_id(self) -> str:
        return self.session.external_id

    def stream_active(self, idx: int) -> bool:
        return self.streaming and not self.session.held(idx)


@dataclass(frozen=True)
class Admission:
    """Who may send us calls and how many."""

    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_sessions: int = 1000
    #: INVITEs per second per source address (token bucket, burst = 2x).
    per_source_rate: float = 200.0

    @classmethod
    def from_settings(cls, settings: Any) -> Admission:
        cidrs = getattr(settings, "sip_allow_cidrs", None) or ()
        if isinstance(cidrs, str):
            cidrs = [c for c in cidrs.split(",") if c.strip()]
        return cls(
            allow=tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs),
            max_sessions=int(getattr(settings, "max_sessions", 1000)),
            per_source_rate=float(getattr(settings, "sip_rate_per_source", 200.0)),
        )

    def allowed(self, address: str) -> bool:
        if not self.allow:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.allow)


class _Buckets:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate * 2)
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float) -> bool:
        tokens, last = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._state[key] = (tokens, now)
            return False
        self._state[key] = (tokens - 1, now)
        if len(self._state) > 10_000:  # forget idle sources
            for k in list(self._state)[:5000]:
                del self._state[k]
        return True


class Recorder:
    """Handles SIP events for recording sessions; owns every live call."""

    def __init__(
        self,
        *,
        endpoint: SipEndpoint,
        ctx: PipelineContext,
        allocator: PortAllocator,
        srs: SrsConfig | None = None,
        admission: Admission | None = None,
        media_host: str = "0.0.0.0",
        media_address: str | None = None,
        auto_start: bool = True,
        tenant_for: Callable[[RecordingSession, Peer], str | None] | None = None,
        jitter_depth_ms: int = 60,
        on_streams: Callable[[int, int], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.ctx = ctx
        self.allocator = allocator
        self.srs = srs or SrsConfig()
        self.admission = admission or Admission()
        self.media_host = media_host
        self.media_address = media_address
        self.auto_start = auto_start
        self.tenant_for = tenant_for or (lambda _s, _p: None)
        self.jitter_depth_ms = jitter_depth_ms
        self.on_streams = on_streams
        self.pump: Callable[[], None] = lambda: None
        self.calls: dict[str, LiveCall] = {}
        self._by_sip: dict[str, str] = {}
        self._setting_up: dict[str, bool] = {}  # invite tid -> cancelled?
        self._buckets = _Buckets(self.admission.per_source_rate)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.draining = False
        self.rejected: dict[int, int] = defaultdict(int)
        self.parse_failures = 0
        self._recent_ended: deque[str] = deque(maxlen=1000)

    # -- SIP events ----------------------------------------------------------------------
    def on_event(self, event: SipEvent) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, CancelReceived):
            if event.transaction_id in self._setting_up:
                self._setting_up[event.transaction_id] = True
        elif isinstance(event, AckReceived):
            call = self._call_for(event.request.call_id)
            if call is not None:
                call.dialog_id = event.dialog_id
        elif isinstance(event, (AckTimedOut, SessionExpired)):
            call = self._call_for(event.call_id)
            if call is not None:
                if call.dialog_id is None:  # no ACK came: end it with a BYE (RFC 3261 §13.3.1.4)
                    call.dialog_id = event.dialog_id
                reason = "ack-timeout" if isinstance(event, AckTimedOut) else "session-expired"
                self._spawn(self._hang_up(call, reason))
            elif self.endpoint.dialog(event.dialog_id) is not None:
                # A dialog no call owns any more: the BYE's end is what frees it.
                self._send_bye(event.dialog_id)
        elif isinstance(event, ParseFailed):
            self.parse_failures += 1
        elif isinstance(event, TransactionTimedOut):
            log.debug("transaction %s (%s) timed out", event.transaction_id, event.method)

    def _on_request(self, ev: RequestReceived) -> None:
        req = ev.request
        method = req.method
        if method == "INVITE" and ev.dialog_id is None:
            self._admit_invite(ev)
        elif method in ("INVITE", "UPDATE"):
            self._spawn(self._on_reoffer(ev))
        elif method == "BYE":
            self._on_bye(ev)
        elif method == "OPTIONS":
            self._respond(
                ev.transaction_id,
                200,
                headers=[
                    ("Allow", ALLOW),
                    ("Accept", ACCEPT),
                    ("Supported", "siprec, timer"),
                ],
            )
        elif method == "INFO":
            self._respond(ev.transaction_id, 200)
        else:
            self._respond(ev.transaction_id, 405, headers=[("Allow", ALLOW)])

    def _respond(
        self,
        tid: str,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        try:
            resp = self.endpoint.make_response(
                tid, status, reason, headers=headers or [], body=body, content_type=content_type
            )
            self.endpoint.respond(tid, resp)
        except Exception as exc:  # the transaction ended (e.g. CANCELled meanwhile)
            log.debug("cannot answer %s with %d: %s", tid, status, exc)
        self.pump()

    def _reject(
        self, tid: str, status: int, warning: str, *, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.rejected[status] += 1
        text = warning.replace('"', "'")
        agent = self.endpoint.config.host
        self._respond(tid, status, headers=[("Warning", f'399 {agent} "{text}"'), *(headers or [])])

    # -- INVITE --------------------------------------------------------------------------
    def _admit_invite(self, ev: RequestReceived) -> None:
        host = ev.source.address[0]
        if self.draining:
            self._reject(
                ev.transaction_id, 503, "server is shutting down", headers=[("Retry-After", "30")]
            )
            return
        if not self.admission.allowed(host):
            self._reject(ev.transaction_id, 403, f"source {host} is not allowed to record")
            return
        if len(self.calls) + len(self._setting_up) >= self.admission.max_sessions:
            self._reject(
                ev.transaction_id,
                503,
                f"at capacity ({self.admission.max_sessions} recording sessions)",
                headers=[("Retry-After", "5")],
            )
            return
        if not self._buckets.take(host, time.monotonic()):
            self._reject(
                ev.transaction_id,
                503,
                f"too many INVITEs from {host}",
                headers=[("Retry-After", "1")],
            )
            return
        if ev.request.call_id in self._by_sip:
            self._reject(ev.transaction_id, 482, "a recording with this Call-ID is active")
            return
        self._setting_up[ev.transaction_id] = False
        self._spawn(self._on_invite(ev))

    async def _on_invite(self, ev: RequestReceived) -> None:
        tid = ev.transaction_id
        req = ev.request
        endpoints: list[MediaEndpoint] = []
        try:
            try:
                session = RecordingSession.from_invite(
                    headers=req.headers, body=req.body, call_id=req.call_id, config=self.srs
                )
            except SiprecError as exc:
                self._reject(tid, exc.status, exc.reason)
                return
            try:
                for _ in range(session.audio_mlines):
                    endpoints.append(await MediaEndpoint.open(self.media_host, self.allocator))
            except (PortsExhausted, OSError) as exc:
                self._reject(tid, 503, f"no RTP ports free: {exc}", headers=[("Retry-After", "5")])
                return
            address = self._media_address_for(ev.source)
            ports = [ep.port for ep in endpoints]
            try:
                answer = session.answer(address=address, ports=list(ports))
            except SiprecError as exc:
                self._reject(tid, exc.status, exc.reason)
                return
            if self._setting_up.get(tid):  # CANCELled while we bound ports
                return
            call_id = uuid.uuid4().hex
            tenant_id = self.tenant_for(session, ev.source)
            pipeline = CallPipeline(
                self.ctx,
                call_id,
                source="siprec",
                external_id=session.external_id,
                tenant_id=tenant_id,
                metadata=session.describe(),
            )
            call = LiveCall(
                call_id,
                tenant_id,
                session,
                req.call_id,
                ev.source,
                pipeline,
                streaming=self.auto_start,
            )
            await pipeline.start()
            by_port = {ep.port: ep for ep in endpoints}
            for acc in answer.accepted:
                ep = by_port.pop(acc.local_port)
                self._add_stream(call, acc, ep)
            for ep in by_port.values():  # refused m-lines: give the ports back
                ep.close()
            endpoints = []
            self.calls[call_id] = call
            self._by_sip[req.call_id] = call_id
            self._report_streams()
            contact = str(self.endpoint.contact(ev.source.transport))
            self._respond(
                tid,
                200,
                headers=[
                    ("Contact", f"{contact};+sip.srs"),
                    ("Allow", ALLOW),
                    ("Supported", "siprec, timer"),
                ],
                body=bytes(answer),
                content_type="application/sdp",
            )
            log.info(
                "recording call %s (SIP Call-ID %s, external id %s): %d streams, roles %s",
                call_id,
                req.call_id,
                session.external_id,
                len(call.streams),
                session.roles.summary,
                extra={"call_id": call_id},
            )
        except Exception as exc:
            log.exception("INVITE %s failed", req.call_id)
            self._reject(tid, 500, f"internal error setting up the recording: {exc}")
        finally:
            self._setting_up.pop(tid, None)
            for ep in endpoints:
                ep.close()

    def _add_stream(self, call: LiveCall, acc: AcceptedStream, ep: MediaEndpoint) -> None:
        role_info = call.session.roles.for_mline(acc.mline_index)
        cfg = self._media_config(acc)
        channel = len(call.streams)
        stream_id = f"{call.call_id}:{acc.label if acc.label is not None else acc.mline_index}"
        sink = call.pipeline.add_stream(
            stream_id,
            channel=channel,
            role=role_info.role if role_info else None,
            input_rate=output_rate(cfg),
            codec=cfg.primary()[1].encoding,
            label=acc.label,
            paused=not call.stream_active(acc.mline_index),
        )
        ep.attach(MediaStream(cfg, sink, clock=asyncio.get_running_loop().time))
        call.streams[acc.mline_index] = LiveStream(acc.mline_index, ep, sink, acc)

    def _media_config(self, acc: AcceptedStream) -> MediaStreamConfig:
        pts = {
            pt: PayloadFormat(c.encoding, c.clock_rate, c.channels or 1, c.fmtp)
            for pt, c in acc.payload_types.items()
        }
        crypto = CryptoAttribute.parse(acc.crypto.remote_attribute) if acc.crypto else None
        return MediaStreamConfig(
            payload_types=pts, remote_crypto=crypto, jitter_depth_ms=self.jitter_depth_ms
        )

    def _media_address_for(self, peer: Peer) -> str:
        if self.media_address:
            return self.media_address
        if self.media_host not in ("0.0.0.0", "::", ""):
            return self.media_host
        return local_address_towards(peer.address[0])

    # -- re-INVITE / UPDATE --------------------------------------------------------------
    async def _on_reoffer(self, ev: RequestReceived) -> None:
        tid = ev.transaction_id
        req = ev.request
        call = self._call_for(req.call_id)
        if call is None or call.ending:
            self._reject(tid, 481, "no such recording session")
            return
        session = call.session
        extra: list[MediaEndpoint] = []
        try:
            known = len(session.offer.media)
            new_lines = max(0, req.body.count(b"\nm=") + req.body.startswith(b"m=") - known)
            for _ in range(new_lines):
                extra.append(await MediaEndpoint.open(self.media_host, self.allocator))
            free = iter([ep.port for ep in extra])
            try:
                result = session.reoffer(
                    headers=req.headers,
                    body=req.body,
                    address=self._media_address_for(call.source),
                    ports=lambda: next(free),
                )
            except SiprecError as exc:
                self._reject(tid, exc.status, exc.reason)
                return
            except StopIteration:
                self._reject(tid, 503, "no RTP ports free for the new streams")
                return
            by_port = {ep.port: ep for ep in extra}
            for change in result.changes:
                live = call.streams.get(change.mline_index)
                if change.kind == "added" and change.accepted is not None:
                    ep = by_port.pop(change.accepted.local_port)
                    self._add_stream(call, change.accepted, ep)
                elif change.kind == "removed" and live is not None:
                    live.endpoint.close()
                    await call.pipeline.remove_stream(live.pipeline.stream_id)
                    del call.streams[change.mline_index]
                elif change.kind in ("held", "resumed") and live is not None:
                    self._apply_activity(call, change.mline_index)
                elif change.kind == "updated" and live is not None and change.accepted:
                    live.accepted = change.accepted
                    live.endpoint.attach(
                        MediaStream(
                            self._media_config(change.accepted),
                            live.pipeline,
                            clock=asyncio.get_running_loop().time,
                        )
                    )
            if result.roles_changed:
                for idx, live in call.streams.items():
                    info = session.roles.for_mline(idx)
                    live.pipeline.role = info.role if info else None
                call.pipeline.emit(CallUpdated(call.call_id, session.describe()))
            extra = list(by_port.values())
            self._report_streams()
            self._respond(
                tid,
                200,
                headers=[("Allow", ALLOW), ("Supported", "siprec, timer")],
                body=bytes(result.answer),
                content_type="application/sdp",
            )
        except Exception as exc:
            log.exception("re-offer on call %s failed", call.call_id)
            self._reject(tid, 500, f"internal error applying the re-offer: {exc}")
        finally:
            for ep in extra:
                ep.close()

    def _apply_activity(self, call: LiveCall, idx: int) -> None:
        live = call.streams[idx]
        if call.stream_active(idx):
            live.pipeline.resume()
        else:
            live.pipeline.pause()

    # -- BYE and ending ------------------------------------------------------------------
    def _on_bye(self, ev: RequestReceived) -> None:
        call = self._call_for(ev.request.call_id)
        self._respond(ev.transaction_id, 200)
        if call is not None:
            self._spawn(self.end_call(call, "bye"))

    async def _hang_up(self, call: LiveCall, reason: str) -> None:
        if call.dialog_id is not None:
            self._send_bye(call.dialog_id)
        await self.end_call(call, reason)

    def _send_bye(self, dialog_id: str) -> None:
        try:
            self.endpoint.send_in_dialog(dialog_id, "BYE")
            self.pump()
        except Exception as exc:
            log.debug("cannot send BYE in dialog %s: %s", dialog_id, exc)

    async def end_call(self, call: LiveCall, reason: str) -> None:
        """Flush every stream, wait for the last utterance, publish ``call.ended``."""
        if call.ending:
            return
        call.ending = True
        for live in call.streams.values():
            live.endpoint.close()  # flushes the jitter buffer into the pipeline
        await call.pipeline.end(reason)
        self.calls.pop(call.call_id, None)
        self._by_sip.pop(call.sip_call_id, None)
        self._recent_ended.append(call.external_id)
        self._report_streams()
        log.info(
            "call %s ended (%s): %d utterances",
            call.call_id,
            reason,
            call.pipeline.utterance_count,
            extra={"call_id": call.call_id},
        )

    # -- streaming control (the start/stop-streaming API) --------------------------------
    def find_by_guid(self, guid: str) -> LiveCall | None:
        for call in self.calls.values():
            if guid in (call.external_id, call.sip_call_id, call.call_id):
                return call
        return None

    def recently_ended(self, guid: str) -> bool:
        return guid in self._recent_ended

    def start_streaming(
        self,
        guid: str,
        *,
        media_line_order: str | None = None,
        language: str | None = None,
        customer_id: str | None = None,
        agent_id: str | None = None,
        redaction_output: str | None = None,
    ) -> LiveCall:
        call = self._streaming_target(guid)
        if call.streaming:
            raise StreamingError("409-201", f"streaming already started for {guid}")
        call.pending = "start"
        try:
            if media_line_order:
                roles = call.session.apply_media_line_order(media_line_order)
                for idx, live in call.streams.items():
                    info = roles.for_mline(idx)
                    live.pipeline.role = info.role if info else None
            if language:
                call.pipeline.language = language
            call.customer_id = customer_id or call.customer_id
            call.agent_id = agent_id or call.agent_id
            call.redaction_output = redaction_output or call.redaction_output
            update: dict[str, Any] = {
                "parties": {"customer": call.customer_id, "agent": call.agent_id},
                "redaction_output": call.redaction_output,
            }
            if media_line_order:
                update["roles"] = call.session.roles.to_dict()
            call.pipeline.emit(CallUpdated(call.call_id, update))
            call.streaming = True
            for idx in call.streams:
                self._apply_activity(call, idx)
        finally:
            call.pending = None
        return call

    async def stop_streaming(self, guid: str, *, settle_timeout: float = 30.0) -> LiveCall:
        """Pause transcription and wait until what was said before the stop is recognised,
        so the caller's summary counts every transcript (requests meanwhile get 409-202)."""
        call = self._streaming_target(guid)
        if not call.streaming:
            raise StreamingError("409-201", f"streaming already stopped for {guid}")
        call.pending = "stop"
        try:
            call.streaming = False
            for idx in call.streams:
                self._apply_activity(call, idx)
            waits = [live.pipeline.settle() for live in call.streams.values()]
            await asyncio.wait_for(asyncio.gather(*waits), settle_timeout)
        finally:
            call.pending = None
        return call

    def _streaming_target(self, guid: str) -> LiveCall:
        call = self.find_by_guid(guid)
        if call is None:
            raise StreamingError("400-203", f"no active call with guid {guid}")
        if call.ending:
            raise StreamingError("409-203", f"call {guid} is ending (BYE being processed)")
        if call.pending is not None:
            raise StreamingError("409-202", f"another request for {guid} is pending")
        return call

    # -- lifecycle -----------------------------------------------------------------------
    async def drain(self, timeout: float) -> None:
        """Refuse new INVITEs; let active calls finish, then end the rest (nothing lost)."""
        self.draining = True
        deadline = time.monotonic() + timeout
        while self.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for call in list(self.calls.values()):
            await self._hang_up(call, "shutdown")
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=max(1.0, deadline - time.monotonic()))

    def _call_for(self, sip_call_id: str) -> LiveCall | None:
        cid = self._by_sip.get(sip_call_id)
        return self.calls.get(cid) if cid else None

    def _report_streams(self) -> None:
        if self.on_streams is not None:
            self.on_streams(len(self.calls), sum(len(c.streams) for c in self.calls.values()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def local_address_towards(remote: str) -> str:
    """The local IP the kernel would use to reach ``remote`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((remote, 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1" if family == socket.AF_INET else "::1"
