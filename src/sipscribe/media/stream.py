"""The asyncio edge of one received media stream: a UDP socket pair and its chain.

Each datagram goes: (rtcp-mux demux) → SRTP unprotect → RTP parse → telephone-event to
the DTMF receiver, audio to the jitter buffer → decode, or conceal each gap → the PCM
sink. Everything here but the sockets and the timer is sans-I/O code from this package;
this module owns only I/O and time. Streams are identified by their local port, never
by SSRC (many senders reuse SSRCs across calls). Nothing here waits on recognition: the
sink's ``feed`` is synchronous and cheap.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sipscribe.media.codecs import CodecError, Decoder, UnsupportedCodec, get_decoder
from sipscribe.media.dtmf import DtmfEvent, DtmfReceiver
from sipscribe.media.errors import DtmfError, MediaError, RtcpError, SrtpError, SrtpReplayError
from sipscribe.media.jitterbuffer import Gap, JitterBuffer
from sipscribe.media.ports import PortAllocator
from sipscribe.media.resample import resample
from sipscribe.media.rtcp import RtcpBye, RtcpPacket
from sipscribe.media.rtp import RtpPacket, is_rtcp
from sipscribe.media.srtp import CryptoAttribute, SrtpReceiver
from sipscribe.media.stats import StreamStats

log = logging.getLogger(__name__)

#: Tries at binding a port pair before giving up (ports taken by other programs).
BIND_ATTEMPTS = 20
#: Receive buffer per RTP socket: rides out event-loop stalls of several seconds (the
#: kernel caps it at net.core.rmem_max) instead of dropping packets.
RCVBUF_BYTES = 4 << 20


class PcmSink(Protocol):
    """Where decoded audio goes (a ``pipeline.call.StreamPipeline``)."""

    input_rate: int

    def feed(self, pcm: np.ndarray) -> None: ...

    def dtmf(self, digit: str, *, start_ms: int, duration_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PayloadFormat:
    """One accepted payload type, as the SDP answer lists it."""

    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def is_dtmf(self) -> bool:
        return self.encoding.lower() == "telephone-event"


@dataclass
class MediaStreamConfig:
    payload_types: dict[int, PayloadFormat]
    #: The remote party's SDES key (``a=crypto`` of the offer); None for plain RTP.
    remote_crypto: CryptoAttribute | None = None
    jitter_depth_ms: int = 60
    #: Output rate handed to the sink; None: the primary codec's decoder rate.
    sample_rate: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def primary(self) -> tuple[int, PayloadFormat]:
        """The first audio payload type that is not comfort noise."""
        for pt, fmt in self.payload_types.items():
            if not fmt.is_dtmf and fmt.encoding.upper() != "CN":
                return pt, fmt
        raise UnsupportedCodec("no audio payload type to decode")


def output_rate(config: MediaStreamConfig) -> int:
    """The PCM rate a stream with this config produces (what its sink must take)."""
    if config.sample_rate:
        return config.sample_rate
    _, fmt = config.primary()
    return get_decoder(fmt.encoding, fmt.clock_rate, fmt.channels, fmt.fmtp).sample_rate


class MediaStream:
    """Receive chain of one participant stream; sans-I/O but for ``attach``ed sockets."""

    def __init__(
        self,
        config: MediaStreamConfig,
        sink: PcmSink,
        *,
        clock: Callable[[], float],
        stats: StreamStats | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self._clock = clock  # seconds, monotonic
        primary_pt, primary = config.primary()
        self.stats = stats or StreamStats(primary.clock_rate, codec=primary.encoding)
        self.rate = sink.input_rate
        self._decoders: dict[int, Decoder] = {}
        self._last_decoder: tuple[Decoder, PayloadFormat] | None = None
        self._dtmf_pts = {pt for pt, f in config.payload_types.items() if f.is_dtmf}
        dtmf_clock = next((config.payload_types[pt].clock_rate for pt in self._dtmf_pts), 8000)
        self.dtmf = DtmfReceiver(dtmf_clock)
        self.jitter = JitterBuffer(primary.clock_rate, config.jitter_depth_ms, stats=self.stats)
        self._srtp = SrtpReceiver(config.remote_crypto) if config.remote_crypto else None
        self._start_ms: float | None = None
        self.last_packet_at: float | None = None
        self.remote_addr: tuple[str, int] | None = None
        self.rtcp_packets = 0
        self.rtcp_bye = False
        self.unknown_payload = 0
        self.closed = False
        self._get_decoder(primary_pt)

    # -- input ---------------------------------------------------------------------------
    def receive_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed:
            return
        now = self._clock()
        now_ms = now * 1000
        if is_rtcp(data):  # rtcp-mux (RFC 5761) on the RTP port
            self.receive_rtcp(data, addr)
            return
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect(data)
            except SrtpReplayError:
                self.stats.replayed += 1
                return
            except SrtpError:  # authentication failure or unusable packet: never decoded
                self.stats.auth_failures += 1
                return
        try:
            packet = RtpPacket.parse(data)
        except MediaError:
            self.stats.invalid += 1
            return
        self.last_packet_at = now
        self.remote_addr = addr
        if self._start_ms is None:
            self._start_ms = now_ms
        pt = packet.payload_type
        if pt in self._dtmf_pts:
            try:
                self._deliver_dtmf(self.dtmf.receive(packet, now_ms))
            except DtmfError:
                self.stats.invalid += 1
            return
        if pt not in self.config.payload_types:
            self.unknown_payload += 1
            return
        self._play(self.jitter.push(packet, now_ms))  # the buffer records arrival stats

    def receive_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect_rtcp(data)
            except SrtpError:
                self.stats.auth_failures += 1
                return
        try:
            packets: list[RtcpPacket] = RtcpPacket.parse_compound(data)
        except RtcpError:
            self.stats.invalid += 1
            return
        self.rtcp_packets += len(packets)
        if any(isinstance(p, RtcpBye) for p in packets):
            self.rtcp_bye = True

    # -- time ----------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        """Seconds (on ``clock``) when ``handle_timer`` has work, or None."""
        times = [t for t in (self.jitter.next_timer(), self.dtmf.next_timer()) if t is not None]
        return min(times) / 1000 if times else None

    def handle_timer(self) -> None:
        now_ms = self._clock() * 1000
        self._play(self.jitter.poll(now_ms))
        self._deliver_dtmf(self.dtmf.poll(now_ms))

    def flush(self) -> None:
        """End of stream: play out what the buffer holds and report open DTMF events."""
        if self.closed:
            return
        self._play(self.jitter.flush())
        self._deliver_dtmf(self.dtmf.flush())
        self.closed = True

    def snapshot(self) -> dict[str, Any]:
        snap = dict(self.stats.snapshot())
        snap.update(rtcp_packets=self.rtcp_packets, unknown_payload=self.unknown_payload)
        return snap

    # -- internals -----------------------------------------------------------------------
    def _get_decoder(self, pt: int) -> tuple[Decoder, PayloadFormat]:
        fmt = self.config.payload_types[pt]
        dec = self._decoders.get(pt)
        if dec is None:
            dec = get_decoder(
                fmt.encoding, fmt.clock_rate, fmt.channels, fmt.fmtp, sample_rate=self.rate
            )
            self._decoders[pt] = dec
        return dec, fmt

    def _play(self, released: list[RtpPacket | Gap]) -> None:
        for item in released:
            if isinstance(item, Gap):
                if self._last_decoder is None or item.samples <= 0:
                    continue
                dec, fmt = self._last_decoder
                n = item.output_samples(clock_rate=fmt.clock_rate, sample_rate=dec.sample_rate)
                self._emit(dec.conceal(n), dec.sample_rate)
                continue
            try:
                dec, fmt = self._get_decoder(item.payload_type)
            except UnsupportedCodec:
                self.unknown_payload += 1
                continue
            self._last_decoder = (dec, fmt)
            try:
                pcm = dec.decode(item.payload)
            except CodecError:
                self.stats.decode_errors += 1
                pcm = dec.conceal(self.jitter.frame_samples * dec.sample_rate // fmt.clock_rate)
            self._emit(pcm, dec.sample_rate)

    def _emit(self, pcm: np.ndarray, rate: int) -> None:
        if pcm.size == 0:
            return
        if rate != self.rate:  # e.g. CN at 8 kHz inside a 16 kHz G.722 stream
            pcm = (np.clip(resample(pcm, rate, self.rate), -1, 1) * 32767).astype(np.int16)
        self.stats.add_audio(pcm.size, self.rate)
        self.sink.feed(pcm)

    def _deliver_dtmf(self, events: list[DtmfEvent]) -> None:
        base = self._start_ms or 0.0
        for ev in events:
            self.stats.dtmf_events += 1
            self.sink.dtmf(
                ev.digit, start_ms=max(0, int(ev.start_ms - base)), duration_ms=int(ev.duration_ms)
            )


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: MediaEndpoint, rtcp: bool) -> None:
        self._owner = owner
        self._rtcp = rtcp

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self._owner.datagram_received(data, addr, rtcp=self._rtcp)

    def error_received(self, exc: Exception) -> None:
        log.debug("media socket error on port %s: %s", self._owner.port, exc)


class MediaEndpoint:
    """A bound RTP/RTCP port pair driving one ``MediaStream`` (set later, or swapped)."""

    def __init__(self, port: int, allocator: PortAllocator) -> None:
        self.port = port
        self._allocator = allocator
        self.stream: MediaStream | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.early_packets = 0

    @classmethod
    async def open(cls, host: str, allocator: PortAllocator) -> MediaEndpoint:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(BIND_ATTEMPTS):
            port = allocator.allocate()
            ep = cls(port, allocator)
            try:
                for offset, rtcp in ((0, False), (1, True)):
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda e=ep, r=rtcp: _RtpProtocol(e, r), local_addr=(host, port + offset)
                    )
                    _enlarge_receive_buffer(transport)
                    ep._transports.append(transport)
                return ep
            except OSError as exc:
                last = exc
                for t in ep._transports:
                    t.close()
                allocator.set_aside(port)
        raise OSError(f"no bindable RTP port pair after {BIND_ATTEMPTS} tries: {last}")

    def attach(self, stream: MediaStream) -> None:
        self.stream = stream
        self._rearm()

    def datagram_received(self, data: bytes, addr: tuple[str, int], *, rtcp: bool) -> None:
        stream = self.stream
        if stream is None:
            self.early_packets += 1
            return
        if rtcp:
            stream.receive_rtcp(data, addr)
        else:
            stream.receive_rtp(data, addr)
        self._rearm()

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send from the RTP socket (symmetric RTP: the far end and NATs see one port)."""
        if self._transports:
            self._transports[0].sendto(data, addr)

    def _rearm(self) -> None:
        stream = self.stream
        when = stream.next_timer() if stream else None
        if self._timer is not None:
            if when is not None and abs(self._timer.when() - when) < 0.0005:
                return
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.stream is not None:
            self.stream.handle_timer()
            self._rearm()

    def close(self) -> None:
        """Flush the stream, close the sockets and give the ports back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.stream is not None:
            self.stream.flush()
        for t in self._transports:
            t.close()
        if self._transports:
            self._transports = []
            self._allocator.release(self.port)


def _enlarge_receive_buffer(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    except OSError as exc:
        log.debug("cannot enlarge the RTP receive buffer: %s", exc)
