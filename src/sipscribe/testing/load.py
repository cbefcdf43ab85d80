"""Load generation for capacity benchmarks: many calls of real speech as paced RTP.

Theory of operation. A benchmark must not measure its own load generator, so the
sender lives in a child process (``sender_main``) with one asyncio loop that sends
every stream of every call. Payloads are encoded once per conversation variant before
a run starts; at send time only the 12-byte RTP header is packed per datagram. All
packets of all streams sit in one heap ordered by due time (``time.monotonic``, which
on Linux is one clock for every process), so a stream's packets go out 20 ms apart
from its ``start_at``, streams keep their own phases instead of bursting together, and
a late loop catches up rather than dropping packets.

Also here, for the receiving side: ``LoopLagProbe`` (event-loop lag as a 10 ms
ticker's overshoot) and the kernel's UDP drop counters (per socket from
``/proc/net/udp``, per namespace from ``/proc/net/snmp``).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from sipscribe.media.rtp import RtpPacket
from sipscribe.testing.corpus import Placed, Recording, build_conversation, load_corpus
from sipscribe.testing.rtp import CODECS, PTIME_MS, encode_frames

_HEADER = struct.Struct("!BBHLL")  # RFC 3550 §5.1 fixed header, no CSRC, no extension
_LATE_BUCKET_MS = 0.1
_LATE_BUCKETS = 20_000  # 0-2 s in 0.1 ms steps; later than that lands in the last one


def call_conversation(
    recordings: Sequence[Recording], variant: int, seconds: float
) -> tuple[list[np.ndarray], list[Placed]]:
    """Two-party conversation number ``variant``, at most ``seconds`` long.

    Turns alternate between the two channels; each variant shuffles the recordings in
    its own order and pauses its own length between turns (0.6-1.4 s), so calls built
    from different variants are never in lockstep. Deterministic in ``variant``.
    """
    rng = random.Random(variant)
    gap_s = round(rng.uniform(0.6, 1.4), 2)
    lead_s = 0.5
    turns: list[Recording] = []
    pos = lead_s
    pool: list[Recording] = []
    while True:
        if not pool:
            pool = list(recordings)
            rng.shuffle(pool)
        fits = [k for k, r in enumerate(pool) if pos + r.duration_s + gap_s + lead_s <= seconds]
        if not fits:
            break
        rec = pool.pop(fits[-1])  # the shuffled order, skipping turns too long to fit
        turns.append(rec)
        pos += rec.duration_s + gap_s
    if not turns:
        raise ValueError(f"{seconds} s is too short for a conversation turn")
    return build_conversation(turns, gap_s=gap_s, lead_s=lead_s)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One RTP stream to send: which audio, where to, and when its first packet goes."""

    port: int
    variant: int
    channel: int
    ssrc: int
    #: ``time.monotonic()`` of the first packet; packet k is due 20 ms * k later.
    start_at: float
    seq0: int
    ts0: int


@dataclass
class SenderReport:
    """What the sender did in one run; ``sent[i]`` belongs to the i-th ``StreamPlan``."""

    sent: list[int]
    send_errors: int
    late_p50_ms: float
    late_p99_ms: float
    late_max_ms: float
    cpu_s: float
    #: From the first packet's due time to the last packet.
    wall_s: float
    #: ``time.monotonic()`` when the last packet went out.
    finished_at: float
    encode_s: float = 0.0

    @property
    def total_sent(self) -> int:
        return sum(self.sent)


@dataclass
class _Stream:
    sock: socket.socket
    target: tuple[str, int]
    payloads: list[bytes]
    ssrc: int
    seq0: int
    ts0: int
    pt: int = 0
    step: int = 160
    index: int = 0
    errors: int = 0


class PayloadCache:
    """Encoded payloads per (variant, channel), built once per process and reused."""

    def __init__(self, codec: str = "PCMU") -> None:
        self.codec = codec
        self._recordings: list[Recording] | None = None
        self._payloads: dict[tuple[int, int, float], list[bytes]] = {}

    def payloads(self, variant: int, channel: int, seconds: float) -> list[bytes]:
        key = (variant, channel, seconds)
        if key not in self._payloads:
            if self._recordings is None:
                self._recordings = load_corpus()
            tracks, _ = call_conversation(self._recordings, variant, seconds)
            for ch, track in enumerate(tracks):
                self._payloads[(variant, ch, seconds)] = encode_frames(track, self.codec)
        return self._payloads[key]


async def send_streams(
    plans: Sequence[StreamPlan],
    payloads: Sequence[list[bytes]],
    *,
    host: str = "127.0.0.1",
    codec: str = "PCMU",
) -> SenderReport:
    """Send every plan's payloads at real-time pace from this one loop.

    A send the kernel refuses (full socket buffer, ``ENOBUFS``) is counted in
    ``send_errors`` and not retried: a real phone would not retry either.
    """
    spec = CODECS[codec]
    streams: list[_Stream] = []
    for plan, pl in zip(plans, payloads, strict=True):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        streams.append(
            _Stream(
                sock,
                (host, plan.port),
                pl,
                plan.ssrc,
                plan.seq0,
                plan.ts0,
                pt=spec.payload_type,
                step=spec.timestamp_step,
            )
        )
        if pl:  # our hand-packed header must be the one RtpPacket writes
            first = RtpPacket(
                payload_type=spec.payload_type,
                sequence_number=plan.seq0,
                timestamp=plan.ts0,
                ssrc=plan.ssrc,
                marker=True,
                payload=pl[0],
            )
            if _packet(streams[-1], 0) != bytes(first):
                raise AssertionError("hand-packed RTP header differs from RtpPacket")
    heap = [(plan.start_at, i) for i, plan in enumerate(plans) if payloads[i]]
    heapq.heapify(heap)
    heap_size = len(heap)
    first_due = heap[0][0] if heap else 0.0
    late = [0] * _LATE_BUCKETS
    ptime = PTIME_MS / 1000
    cpu0 = time.process_time()  # idle waiting before the first packet costs nothing
    finished = time.monotonic()
    errors = 0
    clock = time.monotonic
    try:
        while heap:
            due, i = heap[0]
            now = clock()
            if due > now:
                await asyncio.sleep(due - now)
                continue
            st = streams[i]
            k = st.index
            try:
                st.sock.sendto(_packet(st, k), st.target)
            except OSError:  # BlockingIOError, ENOBUFS: the kernel would not take it
                st.errors += 1
                errors += 1
            late[min(int((now - due) / _LATE_BUCKET_MS * 1000), _LATE_BUCKETS - 1)] += 1
            st.index = k + 1
            if st.index < len(st.payloads):
                heapq.heapreplace(heap, (due + ptime, i))
            else:
                heapq.heappop(heap)
                finished = clock()
    finally:
        for st in streams:
            st.sock.close()
    counts = np.asarray(late, dtype=np.int64)
    return SenderReport(
        sent=[st.index - st.errors for st in streams],
        send_errors=errors,
        late_p50_ms=_hist_percentile(counts, 50),
        late_p99_ms=_hist_percentile(counts, 99),
        late_max_ms=_hist_percentile(counts, 100),
        cpu_s=time.process_time() - cpu0,
        wall_s=finished - first_due if heap_size else 0.0,
        finished_at=finished,
    )


def _packet(st: _Stream, k: int) -> bytes:
    header = _HEADER.pack(
        0x80,  # version 2, no padding, no extension, no CSRC
        st.pt | (0x80 if k == 0 else 0),
        (st.seq0 + k) & 0xFFFF,
        (st.ts0 + k * st.step) & 0xFFFFFFFF,
        st.ssrc,
    )
    return header + st.payloads[k]


def _hist_percentile(counts: np.ndarray, q: float) -> float:
    total = int(counts.sum())
    if total == 0:
        return 0.0
    rank = max(1, int(np.ceil(total * q / 100)))
    bucket = int(np.searchsorted(np.cumsum(counts), rank))
    return round(bucket * _LATE_BUCKET_MS, 2)


def sender_main(conn: Connection, codec: str = "PCMU") -> None:
    """Child-process entry: serve ``encode``/``run``/``quit`` requests from ``conn``.

    ``("encode", [(variant, seconds), ...])`` → ``("ready", encode_seconds)``;
    ``("run", [StreamPlan as dict, ...], seconds)`` → ``("done", SenderReport as dict)``;
    any failure → ``("error", message)``.
    """
    cache = PayloadCache(codec)
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "quit":
                return
            if msg[0] == "encode":
                t = time.perf_counter()
                for variant, seconds in msg[1]:
                    for ch in (0, 1):
                        cache.payloads(variant, ch, seconds)
                conn.send(("ready", time.perf_counter() - t))
            elif msg[0] == "run":
                plans = [StreamPlan(**p) for p in msg[1]]
                t = time.perf_counter()
                payloads = [cache.payloads(p.variant, p.channel, msg[2]) for p in plans]
                encode_s = time.perf_counter() - t
                report = asyncio.run(send_streams(plans, payloads, codec=codec))
                report.encode_s = encode_s
                conn.send(("done", asdict(report)))
            else:
                conn.send(("error", f"unknown sender request {msg[0]!r}"))
        except Exception as exc:  # the parent must hear about it, not hang on recv
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class LoopLagProbe:
    """Event-loop lag: how late a ``period`` ticker wakes up, in seconds."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick(), name="loop-lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def reset(self) -> None:
        self.lags.clear()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, loop.time() - t - self.period))


@dataclass(frozen=True, slots=True)
class UdpSocketState:
    """The kernel's view of a set of our bound UDP sockets (``/proc/net/udp``)."""

    #: Datagrams dropped on arrival (receive buffer full), summed over the sockets.
    drops: int
    #: Bytes waiting to be read (kernel accounting, headers included), summed.
    queued_bytes: int
    #: The most bytes waiting on any one socket: how far its reader is behind.
    max_queued_bytes: int


def udp_sockets(ports: Iterable[int], *, host: str = "127.0.0.1") -> UdpSocketState:
    """Drops and read backlog of the sockets bound to ``host`` on ``ports``."""
    wanted = set(ports)
    ip = socket.inet_aton(host)[::-1].hex().upper()  # /proc shows IPv4 little-endian
    drops = queued = most = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        addr, _, port = cols[1].partition(":")
        if addr == ip and int(port, 16) in wanted:
            drops += int(cols[-1])
            rx = int(cols[4].partition(":")[2], 16)
            queued += rx
            most = max(most, rx)
    return UdpSocketState(drops, queued, most)


def snmp_udp_counters() -> dict[str, int]:
    """The namespace's UDP counters (``/proc/net/snmp``), e.g. ``RcvbufErrors``."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()]
    rows = [ln for ln in lines if ln and ln[0] == "Udp:"]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:], strict=True)}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation), None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def describe(values: Sequence[float]) -> dict[str, Any]:
    """p50/p95/p99/max/mean of ``values`` (None when empty)."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": float(np.mean(values)) if values else None,
    }
