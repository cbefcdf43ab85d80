"""Dialling out: place a SIP call to a URI, listen to it, transcribe it, hang up.

The asyncio side of the ``endpoint:connect`` API. It shares the process's SIP endpoint
with the SIPREC recorder (one port, one transaction layer); ``app.py`` routes the SIP
events of our own calls here (``owns``). Per connection it binds an RTP port pair, sends
the INVITE that :class:`~sipscribe.dialout.session.OutboundCall` builds, follows the
responses (digest auth, ringing, early media, CANCEL after the ring timeout), and once
answered feeds the far end's audio into a one-stream ``CallPipeline`` while an
``RtpSender`` keeps silence (and any DTMF digits) flowing back. Either side's BYE, a
stop request, a session-timer expiry or the maximum duration ends it; the pipeline is
flushed so every word said is recognised, then the stop actions run.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sipscribe.dialout.offer import (
    ENCODINGS,
    AnsweredMedia,
    OfferError,
    build_answer,
    build_offer,
    parse_answer,
)
from sipscribe.dialout.session import (
    Answered,
    CallState,
    Early,
    Ended,
    OutboundCall,
    Retry,
    Ringing,
    Step,
)
from sipscribe.media.ports import PortAllocator, PortsExhausted
from sipscribe.media.sender import RtpSender
from sipscribe.media.stream import MediaEndpoint, MediaStream, MediaStreamConfig, output_rate
from sipscribe.pipeline.call import CallPipeline, PipelineContext, StreamPipeline
from sipscribe.pipeline.events import CallUpdated
from sipscribe.pipeline.speakers import Speaker, SpeakerTimeline
from sipscribe.recorder import local_address_towards
from sipscribe.sip.endpoint import SipEndpoint
from sipscribe.sip.events import (
    AckTimedOut,
    Peer,
    RequestReceived,
    ResponseReceived,
    SessionExpired,
    SessionRefreshDue,
    SipEvent,
    TransactionTimedOut,
)
from sipscribe.sip.uri import SipUri

log = logging.getLogger("sipscribe.dialout")

#: Ended connections kept for GET /v1/endpoint:connect/{id} (the call record keeps more).
KEEP_ENDED = 10_000


class DialError(Exception):
    """A connect request that cannot be served; ``status`` is the HTTP status to answer and
    ``field`` the input at fault, if one is."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class DialRequest:
    """A validated ``operation: start`` request."""

    uri: SipUri
    encoding: str = "PCMU"
    sample_rate: int | None = None
    dtmf: str = ""
    language: str | None = None
    session_name: str | None = None
    provider_name: str | None = None
    credentials: tuple[str, str] | None = None
    display_name: str | None = None
    actions: tuple[dict[str, Any], ...] = ()


@dataclass
class Connection:
    id: str
    tenant_id: str
    request: DialRequest
    call: OutboundCall
    pipeline: CallPipeline
    media: MediaEndpoint
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    status: int | None = None
    reason: str | None = None
    detail: str = ""
    invite_tid: str | None = None
    dialog_id: str | None = None
    stream: StreamPipeline | None = None
    answer: AnsweredMedia | None = None
    sender: RtpSender | None = None
    speakers: SpeakerTimeline = field(default_factory=SpeakerTimeline)
    ending: bool = False
    ring_timed_out: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    action_results: list[dict[str, Any]] = field(default_factory=list)
    _timers: list[asyncio.TimerHandle] = field(default_factory=list)
    _send_timer: asyncio.TimerHandle | None = None
    _sdp_version: int = 1

    @property
    def conversation_id(self) -> str:
        return self.pipeline.call_id

    @property
    def state(self) -> CallState:
        return CallState.ENDED if self.ended_at is not None else self.call.state

    def to_dict(self) -> dict[str, Any]:
        send = self.answer.send if self.answer else None
        return {
            "connectionId": self.id,
            "conversationId": self.conversation_id,
            "state": self.state.value,
            "uri": str(self.request.uri),
            "sipCallId": self.call.call_id,
            "sipStatus": self.status if self.status is not None else self.call.last_status,
            "reason": self.reason,
            "detail": self.detail or None,
            "codec": send.encoding if send else None,
            "dtmfSent": self.sender.digits_sent if self.sender else "",
            "createdAt": _iso(self.created_at),
            "connectedAt": _iso(self.connected_at),
            "endedAt": _iso(self.ended_at),
            "actions": self.action_results,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


StopAction = Callable[[Connection], Awaitable[list[dict[str, Any]]]]


class Dialer:
    """Owns every dialled call; receives the SIP events of their transactions and dialogs."""

    def __init__(
        self,
        *,
        endpoint: SipEndpoint,
        ctx: PipelineContext,
        allocator: PortAllocator,
        settings: Any,
        media_host: str = "0.0.0.0",
        media_address: str | None = None,
        stop_actions: StopAction | None = None,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.ctx = ctx
        self.allocator = allocator
        self.settings = settings
        self.media_host = media_host
        self.media_address = media_address
        self.stop_actions = stop_actions
        self.on_change = on_change
        self.pump: Callable[[], None] = lambda: None
        self.connections: dict[str, Connection] = {}
        self._ended: OrderedDict[str, Connection] = OrderedDict()
        self._by_sip: dict[str, str] = {}
        self._by_tid: dict[str, str] = {}
        self._per_tenant: dict[str, int] = defaultdict(int)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.draining = False
        proxy = getattr(settings, "dialout_proxy", None)
        self.proxy = SipUri.parse(proxy) if proxy else None

    # -- API -----------------------------------------------------------------------------
    async def start(self, tenant_id: str, request: DialRequest) -> Connection:
        """Bind media, send the INVITE; returns at once (the call proceeds in the background)."""
        if self.draining:
            raise DialError(503, "the server is shutting down")
        limit = int(getattr(self.settings, "dialout_max_per_tenant", 10))
        if self._per_tenant[tenant_id] >= limit:
            raise DialError(429, f"the tenant's limit of {limit} concurrent connections is reached")
        destination = await self._destination(request.uri)
        try:
            media = await MediaEndpoint.open(self.media_host, self.allocator)
        except (PortsExhausted, OSError) as exc:
            raise DialError(503, f"no RTP port free: {exc}") from exc
        try:
            connection_id = str(uuid.uuid4())
            address = self.media_address or self._media_host_towards(destination)
            offer = build_offer(
                address=address,
                port=media.port,
                encoding=request.encoding,
                sample_rate=request.sample_rate,
                session_id=_session_id_of(connection_id),  # the same in every later offer
            )
            s = self.settings
            contact = self.endpoint.contact(destination.transport)
            from_uri = SipUri(
                contact.uri.host if isinstance(contact.uri, SipUri) else "127.0.0.1",
                user=str(getattr(s, "dialout_from_user", "sipscribe")),
            )
            credentials = request.credentials
            if credentials is None and getattr(s, "dialout_username", None):
                credentials = (s.dialout_username, s.dialout_password or "")
            call = OutboundCall(
                target=request.uri,
                destination=destination,
                from_uri=from_uri,
                contact=contact,
                offer=bytes(offer),
                display_name=request.display_name or getattr(s, "dialout_display_name", None),
                credentials=credentials,
                proxy=self.proxy,
            )
            pipeline = CallPipeline(
                self.ctx,
                uuid.uuid4().hex,
                source="dial-out",
                external_id=connection_id,
                tenant_id=tenant_id,
                language=request.language,
                metadata={
                    "sip_call_id": call.call_id,
                    "identifiers": {
                        "connection_id": connection_id,
                        "uri": str(request.uri),
                        "session_name": request.session_name,
                        "provider_name": request.provider_name,
                    },
                },
            )
        except BaseException:
            media.close()
            raise
        conn = Connection(connection_id, tenant_id, request, call, pipeline, media)
        await pipeline.start()
        self.connections[conn.id] = conn
        self._by_sip[call.call_id] = conn.id
        self._per_tenant[tenant_id] += 1
        self._changed()
        self._send_invite(conn, call.invite())
        ring = float(getattr(s, "dialout_ring_timeout_s", 60.0))
        conn._timers.append(asyncio.get_running_loop().call_later(ring, self._ring_timeout, conn))
        log.info(
            "dialling %s (connection %s, SIP Call-ID %s)",
            request.uri,
            conn.id,
            call.call_id,
            extra={"call_id": conn.conversation_id},
        )
        return conn

    def get(self, connection_id: str) -> Connection | None:
        return self.connections.get(connection_id) or self._ended.get(connection_id)

    async def stop(self, connection_id: str, *, wait: float = 30.0) -> Connection:
        """Hang up (BYE, or CANCEL before the answer); waits until the call has ended."""
        conn = self.connections.get(connection_id)
        if conn is None:
            ended = self._ended.get(connection_id)
            if ended is not None:
                return ended
            raise DialError(404, f"no connection {connection_id}")
        self._hang_up(conn, "completed", "stopped by request")
        await asyncio.wait_for(conn.done.wait(), wait)
        return conn

    def speaker_event(
        self, connection_id: str, kind: str, speaker: Speaker, at: datetime | None
    ) -> None:
        """A started/stopped_speaking event, placed on the stream's clock."""
        conn = self.connections.get(connection_id)
        if conn is None:
            raise DialError(404, f"no active connection {connection_id}")
        at_ms = self._stream_ms(conn, at)
        if kind == "started_speaking":
            conn.speakers.started(speaker, at_ms)
        else:
            conn.speakers.stopped(speaker, at_ms)

    async def drain(self, timeout: float) -> None:
        """Refuse new connections; hang up the live ones (their audio is still transcribed)."""
        self.draining = True
        for conn in list(self.connections.values()):
            self._hang_up(conn, "completed", "server shutdown")
        waits = [c.done.wait() for c in list(self.connections.values())]
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    # -- SIP events ----------------------------------------------------------------------
    def owns(self, event: SipEvent) -> bool:
        if isinstance(event, RequestReceived):
            return event.request.call_id in self._by_sip
        if isinstance(event, (ResponseReceived, TransactionTimedOut)):
            return event.transaction_id in self._by_tid
        call_id = getattr(event, "call_id", None)
        return call_id is not None and call_id in self._by_sip

    def on_event(self, event: SipEvent) -> None:
        if isinstance(event, ResponseReceived):
            conn = self._conn_for_tid(event.transaction_id)
            if conn is None:
                return
            is_invite = event.transaction_id == conn.invite_tid
            if is_invite and conn.ending:
                self._late_invite_response(conn, event)
            elif is_invite and event.response.cseq.method == "INVITE":
                self._on_invite_response(conn, event)
            elif event.response.status >= 200:
                self._by_tid.pop(event.transaction_id, None)
        elif isinstance(event, TransactionTimedOut):
            conn = self._conn_for_tid(event.transaction_id)
            self._by_tid.pop(event.transaction_id, None)
            if (
                conn is not None
                and event.transaction_id == conn.invite_tid
                and conn.call.state is not CallState.CONNECTED
            ):
                # After our CANCEL for the ring timeout, conn.reason already says no_answer.
                self._finish(conn, conn.call.end(408, "timeout", "no final response"))
        elif isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, (AckTimedOut, SessionExpired)):
            conn = self._conn_for_sip(event.call_id)
            if conn is not None:
                self._hang_up(conn, "completed", type(event).__name__)
        elif isinstance(event, SessionRefreshDue):
            conn = self._conn_for_sip(event.call_id)
            if conn is not None and conn.dialog_id is not None:
                self._send_in_dialog(conn, "INVITE", sdp=True)

    def _late_invite_response(self, conn: Connection, event: ResponseReceived) -> None:
        """A response to the INVITE of a connection we already ended (stopped before any
        provisional response, so no CANCEL could go): a 2xx gets a BYE at once (§15)."""
        response = event.response
        if response.status >= 200:
            self._by_tid.pop(event.transaction_id, None)
        if response.is_success and event.dialog_id is not None:
            try:
                tid = self.endpoint.send_in_dialog(event.dialog_id, "BYE", self._clock())
                self._by_tid[tid] = conn.id
                self.pump()
            except Exception as exc:
                log.debug("cannot BYE the late answer on %s: %s", conn.id, exc)

    def _on_invite_response(self, conn: Connection, event: ResponseReceived) -> None:
        response = event.response
        step: Step = conn.call.on_response(response, event.dialog_id)
        if response.status >= 200:
            self._by_tid.pop(event.transaction_id, None)
        if isinstance(step, Ringing):
            self._publish(conn)
        elif isinstance(step, Early):
            self._start_media(conn, step.sdp, early=True)
            self._publish(conn)
        elif isinstance(step, Retry):
            self._send_invite(conn, step.request)
        elif isinstance(step, Answered):
            conn.dialog_id = step.dialog_id
            if conn.call.cancelled:  # our CANCEL lost the race: BYE (§9.1)
                self._send_bye(conn)
                self._finish(conn, conn.call.end(None, "cancelled", "answered after CANCEL"))
                return
            conn.connected_at = datetime.now(UTC)
            self._cancel_timers(conn)
            if not self._start_media(conn, step.sdp, early=False):
                return
            self._after_answer(conn)
            self._publish(conn)
        elif isinstance(step, Ended):
            self._finish(conn, step)

    def _on_request(self, ev: RequestReceived) -> None:
        conn = self._conn_for_sip(ev.request.call_id)
        method = ev.request.method
        if conn is None or (ev.dialog_id is None and method != "OPTIONS"):
            self._respond(ev.transaction_id, 481)
            return
        if method == "BYE":
            self._respond(ev.transaction_id, 200)
            conn.dialog_id = None  # the far end ended the dialog
            self._finish(conn, conn.call.end(None, "completed", "the far end hung up"))
        elif method in ("INVITE", "UPDATE"):
            self._on_reoffer(conn, ev)
        elif method in ("INFO", "OPTIONS", "NOTIFY"):
            self._respond(ev.transaction_id, 200)
        else:
            self._respond(
                ev.transaction_id,
                405,
                headers=[("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO")],
            )

    def _on_reoffer(self, conn: Connection, ev: RequestReceived) -> None:
        """A re-INVITE/UPDATE from the far end: hold, resume, a new address or codec."""
        body = ev.request.body
        if not body:  # an offerless re-INVITE: we offer in the 200, the ACK answers
            self._respond(
                ev.transaction_id,
                200,
                body=self._current_offer(conn, bump=True),
                content_type="application/sdp",
            )
            return
        try:
            offer = parse_answer(body)
        except OfferError as exc:
            self._respond(
                ev.transaction_id,
                exc.status,
                headers=[("Warning", f'399 sipscribe "{exc.reason}"')],
            )
            return
        self._apply_media(conn, offer)
        conn._sdp_version += 1
        answer = build_answer(
            offer,
            address=self._our_address(conn),
            port=conn.media.port,
            session_id=self._session_id(conn),
            version=conn._sdp_version,
        )
        self._publish(conn)
        self._respond(ev.transaction_id, 200, body=bytes(answer), content_type="application/sdp")

    # -- media ---------------------------------------------------------------------------
    def _start_media(self, conn: Connection, sdp: bytes, *, early: bool) -> bool:
        if not sdp:
            if conn.answer is not None:
                return True  # the 2xx repeats the early answer (RFC 3261 §13.2.1)
            self._hang_up(conn, "error", "the 2xx has no SDP answer", status=488)
            return False
        try:
            answer = parse_answer(sdp)
        except OfferError as exc:
            if early:
                log.info("ignoring early SDP on %s: %s", conn.id, exc.reason)
                return False
            self._hang_up(conn, "error", exc.reason, status=exc.status)
            return False
        self._apply_media(conn, answer)
        return True

    def _apply_media(self, conn: Connection, answer: AnsweredMedia) -> None:
        loop = asyncio.get_running_loop()
        previous = conn.answer
        conn.answer = answer
        config = MediaStreamConfig(
            payload_types=answer.receive,
            jitter_depth_ms=int(getattr(self.settings, "jitter_buffer_ms", 60)),
        )
        if conn.stream is None:
            conn.stream = conn.pipeline.add_stream(
                f"{conn.conversation_id}:remote",
                channel=0,
                role=None,
                input_rate=output_rate(config),
                codec=answer.primary.encoding,
                label="remote",
            )
            conn.stream.speakers = conn.speakers
        if previous is None or previous.receive != answer.receive:
            conn.media.attach(MediaStream(config, conn.stream, clock=loop.time))
        if conn.sender is None or (
            previous and previous.send.payload_type != answer.send.payload_type
        ):
            digits = conn.sender.digits_sent if conn.sender else ""
            conn.sender = RtpSender(answer.send, start_ms=loop.time() * 1000)
            conn.sender.digits_sent = digits
            self._schedule_send(conn)

    def _after_answer(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        if conn.request.dtmf:
            delay = int(getattr(self.settings, "dialout_dtmf_delay_ms", 1000)) / 1000
            conn._timers.append(loop.call_later(delay, self._send_dtmf, conn))
        limit = float(getattr(self.settings, "dialout_max_duration_s", 4 * 3600.0))
        conn._timers.append(
            loop.call_later(limit, self._hang_up, conn, "completed", "maximum duration reached")
        )

    def _send_dtmf(self, conn: Connection) -> None:
        if conn.sender is None or conn.ending:
            return
        try:
            conn.sender.send_digits(conn.request.dtmf, asyncio.get_running_loop().time() * 1000)
        except Exception as exc:
            log.warning("cannot send DTMF on %s: %s", conn.id, exc)
            conn.detail = f"DTMF not sent: {exc}"
            return
        self._schedule_send(conn)

    def _schedule_send(self, conn: Connection) -> None:
        if conn._send_timer is not None:
            conn._send_timer.cancel()
        sender = conn.sender
        if sender is None or conn.ending:
            conn._send_timer = None
            return
        loop = asyncio.get_running_loop()
        conn._send_timer = loop.call_at(sender.next_timer() / 1000, self._send_tick, conn)

    def _send_tick(self, conn: Connection) -> None:
        conn._send_timer = None
        sender, answer = conn.sender, conn.answer
        if sender is None or answer is None or conn.ending:
            return
        now_ms = asyncio.get_running_loop().time() * 1000
        packets = sender.poll(now_ms)
        stream = conn.media.stream
        # Where the SDP says (RFC 3264 §5.1; many far ends send from another port than they
        # receive on); where its packets come from only when the SDP gives no address.
        remote = answer.remote or (stream.remote_addr if stream is not None else None)
        if remote is not None and answer.direction.value in ("sendrecv", "recvonly"):
            for packet in packets:
                conn.media.sendto(bytes(packet), remote)
        self._schedule_send(conn)

    # -- ending --------------------------------------------------------------------------
    def _ring_timeout(self, conn: Connection) -> None:
        if conn.call.state in (CallState.DIALING, CallState.RINGING) and not conn.ending:
            conn.ring_timed_out = True
            self._hang_up(conn, "no_answer", "no answer before the ring timeout")

    def _hang_up(
        self, conn: Connection, reason: str, detail: str, *, status: int | None = None
    ) -> None:
        """End from our side: CANCEL an unanswered INVITE, BYE an established dialog."""
        if conn.ending:
            return
        state = conn.call.state
        if state in (CallState.DIALING, CallState.RINGING) and conn.invite_tid is not None:
            conn.call.cancelled = True
            conn.reason = "no_answer" if conn.ring_timed_out else "cancelled"
            conn.detail = detail
            try:
                sent = self.endpoint.cancel(conn.invite_tid, self._clock())
                self.pump()
            except Exception as exc:  # the INVITE already has its final response
                log.debug("cannot CANCEL %s: %s", conn.id, exc)
                sent = None
            if sent is None and conn.call.state is CallState.RINGING:
                return  # the CANCEL went (or goes with the next provisional): the 487 ends it
            if sent is not None:
                return
            # No provisional response yet: RFC 3261 §9.1 forbids a CANCEL now; it is sent
            # if one comes. Ending here does not wait for it (a late 2xx gets a BYE).
            self._finish(conn, conn.call.end(None, conn.reason or reason, detail))
            return
        if state is CallState.CONNECTED and conn.dialog_id is not None:
            self._send_bye(conn)
        self._finish(conn, conn.call.end(status, reason, detail))

    def _send_bye(self, conn: Connection) -> None:
        if conn.dialog_id is None:
            return
        self._send_in_dialog(conn, "BYE")
        conn.dialog_id = None

    def _send_in_dialog(self, conn: Connection, method: str, *, sdp: bool = False) -> None:
        try:
            body = self._current_offer(conn, bump=True) if sdp else b""
            tid = self.endpoint.send_in_dialog(
                conn.dialog_id or "",
                method,
                self._clock(),
                body=body,
                content_type="application/sdp" if sdp else None,
            )
            self._by_tid[tid] = conn.id
            self.pump()
        except Exception as exc:
            log.debug("cannot send %s on %s: %s", method, conn.id, exc)

    def _finish(self, conn: Connection, ended: Ended) -> None:
        if conn.ending:
            return
        conn.ending = True
        conn.status = ended.status if ended.status is not None else conn.call.last_status
        conn.reason = conn.reason or ended.reason  # set first by _hang_up: ours wins
        conn.detail = conn.detail or ended.detail
        self._cancel_timers(conn)
        self._spawn(self._close(conn))

    async def _close(self, conn: Connection) -> None:
        try:
            conn.media.close()  # flushes the jitter buffer into the pipeline
            conn.ended_at = datetime.now(UTC)
            conn.pipeline.emit(CallUpdated(conn.conversation_id, {"connection": conn.to_dict()}))
            await conn.pipeline.end(conn.reason or "completed")
        except Exception:
            log.exception("closing connection %s failed", conn.id)
        finally:
            self.connections.pop(conn.id, None)
            self._by_sip.pop(conn.call.call_id, None)
            for tid in [t for t, cid in self._by_tid.items() if cid == conn.id]:
                if tid != conn.invite_tid or (
                    conn.call.last_status is not None and (conn.call.last_status >= 200)
                ):
                    del self._by_tid[tid]
            self._per_tenant[conn.tenant_id] -= 1
            self._ended[conn.id] = conn
            while len(self._ended) > KEEP_ENDED:
                self._ended.popitem(last=False)
            conn.done.set()
            self._changed()
            log.info(
                "connection %s ended: %s (SIP %s) after %d utterances",
                conn.id,
                conn.reason,
                conn.status,
                conn.pipeline.utterance_count,
                extra={"call_id": conn.conversation_id},
            )
        if self.stop_actions is not None and conn.request.actions:
            try:
                conn.action_results = await self.stop_actions(conn)
            except Exception as exc:
                log.exception("stop actions of %s failed", conn.id)
                conn.action_results = [{"name": "*", "status": "failed", "error": str(exc)}]

    # -- helpers -------------------------------------------------------------------------
    def _send_invite(self, conn: Connection, invite: Any) -> None:
        try:
            tid = self.endpoint.send_request(invite, conn.call.destination, self._clock())
        except Exception as exc:
            log.exception("cannot send INVITE for %s", conn.id)
            self._finish(conn, conn.call.end(None, "error", f"cannot send the INVITE: {exc}"))
            return
        conn.invite_tid = tid
        self._by_tid[tid] = conn.id
        self.pump()

    def _publish(self, conn: Connection) -> None:
        conn.pipeline.emit(CallUpdated(conn.conversation_id, {"connection": conn.to_dict()}))

    def _current_offer(self, conn: Connection, *, bump: bool) -> bytes:
        version = conn._sdp_version + (1 if bump else 0)
        conn._sdp_version = version
        encoding = conn.answer.send.encoding if conn.answer else conn.request.encoding
        sdp = build_offer(
            address=self._our_address(conn),
            port=conn.media.port,
            encoding=encoding if encoding.upper() in ENCODINGS else conn.request.encoding,
            sample_rate=conn.request.sample_rate,
            session_id=self._session_id(conn),
            version=version,
        )
        return bytes(sdp)

    def _our_address(self, conn: Connection) -> str:
        return self.media_address or self._media_host_towards(conn.call.destination)

    @staticmethod
    def _session_id(conn: Connection) -> str:
        return _session_id_of(conn.id)

    def _media_host_towards(self, peer: Peer) -> str:
        if self.media_host not in ("0.0.0.0", "::", ""):
            return self.media_host
        return local_address_towards(peer.address[0])

    async def _destination(self, uri: SipUri) -> Peer:
        """Where the INVITE goes: the outbound proxy, else the URI's host (A/AAAA lookup)."""
        target = self.proxy or uri
        transport = (target.transport or ("TLS" if target.secure else "UDP")).upper()
        if transport not in ("UDP", "TCP", "TLS"):
            raise DialError(400, f"unsupported SIP transport {transport}", field="endpoint.uri")
        host = target.param("maddr") or target.host_address
        port = target.port or (5061 if transport == "TLS" else 5060)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=2 if transport == "UDP" else 1
            )
        except OSError as exc:
            raise DialError(400, f"cannot resolve {host}: {exc}", field="endpoint.uri") from exc
        if not infos:
            raise DialError(400, f"cannot resolve {host}", field="endpoint.uri")
        return Peer(transport, (str(infos[0][4][0]), port))

    def _stream_ms(self, conn: Connection, at: datetime | None) -> int:
        """Wall-clock time → ms on the stream's clock (now, if no time was given)."""
        position = conn.stream.position_ms if conn.stream is not None else 0
        if at is None:
            return position
        now = datetime.now(UTC)
        return max(0, position + int((at - now).total_seconds() * 1000))

    def _respond(
        self,
        tid: str,
        status: int,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        try:
            response = self.endpoint.make_response(
                tid, status, headers=headers or [], body=body, content_type=content_type
            )
            self.endpoint.respond(tid, response, self._clock())
        except Exception as exc:
            log.debug("cannot answer %s: %s", tid, exc)
        self.pump()

    @staticmethod
    def _clock() -> float:
        """The SIP endpoint's clock (the transport feeds it the loop's time)."""
        return asyncio.get_running_loop().time()

    def _conn_for_tid(self, tid: str) -> Connection | None:
        cid = self._by_tid.get(tid)
        if cid is None:
            return None
        return self.connections.get(cid) or self._ended.get(cid)

    def _conn_for_sip(self, call_id: str) -> Connection | None:
        cid = self._by_sip.get(call_id)
        return self.connections.get(cid) if cid else None

    def _cancel_timers(self, conn: Connection) -> None:
        for timer in conn._timers:
            timer.cancel()
        conn._timers.clear()
        if conn.ending and conn._send_timer is not None:
            conn._send_timer.cancel()
            conn._send_timer = None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(len(self.connections))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _session_id_of(connection_id: str) -> str:
    """The SDP o= session id of a connection: numeric, stable for the whole call."""
    return str(int(connection_id.replace("-", "")[:12], 16))
