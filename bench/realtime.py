"""Real-time capacity: how many live two-party calls one process receives and transcribes.

    .venv/bin/python bench/realtime.py                      # both modes, default sweeps
    .venv/bin/python bench/realtime.py --calls 4,8,12,16,20 --seconds 45
    .venv/bin/python bench/realtime.py --media-only --calls 100,200,400 [--record]
    .venv/bin/python bench/realtime.py ... --json bench/results/realtime.json

For each N, N calls of real speech (Debian pocketsphinx-testdata, alternating turns as
``build_conversation`` places them; each call its own order, pauses and start offset)
go as PCMU RTP over loopback UDP at real-time pace, two streams per call, to the real
receiving side in this process: ``MediaEndpoint`` + ``MediaStream`` → ``CallPipeline``
→ one shared ``AsrPool`` over the real tiny.en ``WhisperEngine`` (threads=2). The
senders run in a child process (``sipscribe.testing.load.sender_main``): one asyncio
loop sends every stream from payloads encoded before the clock starts, so the load
generator does not compete with the receiver inside its process.

ASR mode reports end-of-speech → utterance latency (``PipelineContext.on_latency``:
``recognized_at - speech_ended_at``, which includes the endpointer's silence wait) and,
as a cross-check, turn end as sent → utterance event on the bus; receiver CPU per call;
packets we lost (sent − received, and the kernel's drops on our sockets); ASR queue
depth sampled every 100 ms; WER against the reference texts. Media-only mode
(``pool=None``: decode and count, no VAD or ASR) reports packets, CPU per call and the
event-loop lag (a 10 ms ticker's overshoot). Capacity is the largest N with p95 ≤ 1 s
(ASR mode) and no packet lost by us. The machine is shared: the ``others`` column is
CPU that neither the receiver nor the sender used, i.e. noise from other programs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import logging
import multiprocessing
import os
import platform
import pstats
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sipscribe.asr.evaluation import word_error_rate
from sipscribe.asr.pool import AsrPool
from sipscribe.media.ports import PortAllocator
from sipscribe.media.stream import MediaEndpoint, MediaStream, MediaStreamConfig, PayloadFormat
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.call import CallPipeline, PipelineContext
from sipscribe.pipeline.endpointer import EndpointerConfig
from sipscribe.pipeline.events import UtteranceEvent
from sipscribe.testing.corpus import Placed, Recording, load_corpus
from sipscribe.testing.load import (
    LoopLagProbe,
    SenderReport,
    StreamPlan,
    call_conversation,
    describe,
    sender_main,
    snmp_udp_counters,
    udp_sockets,
)

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_ASR_CALLS = "4,8,12,16,20"
DEFAULT_MEDIA_CALLS = "100,200,400"
#: Distinct conversations in media-only mode (calls reuse them with their own offsets).
MEDIA_VARIANTS = 24
P95_TARGET_S = 1.0
#: Seconds between handing the plan to the sender and the first packet.
START_DELAY_S = 1.5


@dataclass(frozen=True)
class TrialConfig:
    mode: str  # "asr" or "media"
    seconds: float
    stagger_s: float
    jitter_ms: int
    max_batch: int
    silence_ms: int | None
    record: bool
    profile_dir: Path | None


class Sender:
    """The child process that sends every stream (see ``sipscribe.testing.load``)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no copy of the loaded model, no threads
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=sender_main, args=(child,), name="rtp-sender", daemon=True
        )
        self.process.start()
        child.close()

    def request(self, msg: tuple[Any, ...], timeout: float = 120) -> Any:
        self.conn.send(msg)
        return self.reply(timeout)

    def reply(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"RTP sender gave no answer in {timeout} s")
        kind, body = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"RTP sender failed: {body}")
        return body

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("quit",))
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


async def _await_reply(conn: Connection, timeout: float) -> tuple[str, Any]:
    """Wait for the sender's answer without blocking the loop."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await asyncio.wait_for(ready, timeout)
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


def _cpu_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def _process_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run_trial(
    n: int,
    cfg: TrialConfig,
    sender: Sender,
    recordings: list[Recording],
    allocator: PortAllocator,
    engine: Any | None,
) -> dict[str, Any]:
    """One N: set up N calls, send, drain, measure, tear everything down."""
    loop = asyncio.get_running_loop()
    asr = cfg.mode == "asr"
    rng = random.Random(7919 * n + (1 if asr else 2))
    variants = [i if asr else i % MEDIA_VARIANTS for i in range(n)]
    offsets = [rng.uniform(0, cfg.stagger_s) for _ in range(n)]
    placed = (
        {v: call_conversation(recordings, v, cfg.seconds)[1] for v in set(variants)} if asr else {}
    )
    enc_s = sender.request(("encode", [(v, cfg.seconds) for v in sorted(set(variants))]))

    pool = TimedPool(engine, max_batch=cfg.max_batch) if asr else None
    if pool is not None:
        await pool.start()
    bus = EventBus()
    sub = bus.subscribe("bench", maxsize=1_000_000)
    latencies: list[float] = []
    rec_dir = Path(tempfile.mkdtemp(prefix="sipscribe-bench-")) if cfg.record else None
    ctx = PipelineContext(pool=pool, bus=bus, recordings_dir=rec_dir, on_latency=latencies.append)
    if cfg.silence_ms is not None:
        ctx.endpointer = replace(
            ctx.endpointer,
            silence_ms=cfg.silence_ms,
            trailing_ms=min(ctx.endpointer.trailing_ms, cfg.silence_ms),
        )
    stream_cfg = MediaStreamConfig(
        payload_types={0: PayloadFormat("PCMU", 8000), 101: PayloadFormat("telephone-event", 8000)},
        jitter_depth_ms=cfg.jitter_ms,
    )
    calls: list[CallPipeline] = []
    endpoints: list[list[MediaEndpoint]] = []
    t_setup = time.perf_counter()
    for i in range(n):
        call = CallPipeline(ctx, f"call-{i:04d}")
        await call.start()
        eps = []
        for ch in (0, 1):
            sink = call.add_stream(
                f"call-{i:04d}-{ch}",
                channel=ch,
                role=("agent", "customer")[ch],
                input_rate=8000,
                codec="PCMU",
            )
            ep = await MediaEndpoint.open("127.0.0.1", allocator)
            ep.attach(MediaStream(stream_cfg, sink, clock=loop.time))
            eps.append(ep)
        calls.append(call)
        endpoints.append(eps)
    setup_s = time.perf_counter() - t_setup
    ports = [ep.port for eps in endpoints for ep in eps]

    # utterance events as they reach a bus subscriber, stamped on the loop clock
    arrivals: list[tuple[float, Any]] = []

    async def consume() -> None:
        while (ev := await sub.get()) is not None:
            if isinstance(ev, UtteranceEvent):
                arrivals.append((loop.time(), ev.utterance))

    depth: list[tuple[int, int]] = []
    backlog: list[int] = []

    async def sample_depth() -> None:
        tick = 0
        while True:
            if pool is not None:
                st = pool.stats()
                depth.append((st.queued, st.in_flight))
            if tick % 5 == 0:  # /proc/net/udp costs ~1 ms per 1,000 sockets
                backlog.append(udp_sockets(ports).max_queued_bytes)
            tick += 1
            await asyncio.sleep(0.1)

    consumer = asyncio.create_task(consume())
    probe = LoopLagProbe(0.01)
    probe.start()

    start_at = time.monotonic() + START_DELAY_S
    plans = [
        StreamPlan(
            port=endpoints[i][ch].port,
            variant=variants[i],
            channel=ch,
            ssrc=rng.getrandbits(32),
            start_at=start_at + offsets[i],
            seq0=rng.getrandbits(16),
            ts0=rng.getrandbits(32),
        )
        for i in range(n)
        for ch in (0, 1)
    ]
    sender.conn.send(("run", [asdict(p) for p in plans], cfg.seconds))
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    # the measured window: first packet due → sender done
    probe.reset()
    sampler = asyncio.create_task(sample_depth())
    prof = cProfile.Profile() if cfg.profile_dir else None
    snmp0, drops0 = snmp_udp_counters(), udp_sockets(ports).drops
    busy0, total0 = _cpu_busy_ticks()
    cpu0, thread0, wall0 = _process_cpu(), time.thread_time(), time.monotonic()
    if prof is not None:
        prof.enable()
    kind, body = await _await_reply(sender.conn, cfg.seconds + cfg.stagger_s + 120)
    if prof is not None:
        prof.disable()
    cpu1, thread1, wall1 = _process_cpu(), time.thread_time(), time.monotonic()
    busy1, total1 = _cpu_busy_ticks()
    sampler.cancel()
    lags = list(probe.lags)
    if kind != "done":
        raise RuntimeError(f"RTP sender failed: {body}")
    report = SenderReport(**body)

    # Packets still in socket buffers are late, not lost: wait until the count settles.
    catch_up_s = await _settle(endpoints, report.finished_at, cfg.jitter_ms)
    snaps = [[ep.stream.snapshot() for ep in eps] for eps in endpoints]  # type: ignore[union-attr]
    early = sum(ep.early_packets for eps in endpoints for ep in eps)
    sock_drops = udp_sockets(ports).drops - drops0
    t_drain = time.monotonic()
    for eps in endpoints:
        for ep in eps:
            ep.close()
    # An overloaded N may never drain; give up after a bound and say so in the row.
    drain_limit = max(120.0, 4 * cfg.seconds)
    try:
        await asyncio.wait_for(asyncio.gather(*(c.end() for c in calls)), drain_limit)
        drained = True
    except TimeoutError:
        drained = False
        print(f"[{cfg.mode}] {n} calls: ASR not drained after {drain_limit:.0f} s", file=sys.stderr)
    t_done = time.monotonic()
    drain_s = t_done - t_drain
    if pool is not None:
        pool_stats = pool.stats()
        await pool.stop(drain=drained)
    await bus.close()
    await consumer
    await probe.stop()
    snmp1 = snmp_udp_counters()
    if rec_dir is not None:
        shutil.rmtree(rec_dir, ignore_errors=True)
    if allocator.in_use:
        raise RuntimeError(f"{allocator.in_use} RTP port pairs still in use after the run")

    wall = wall1 - wall0
    received = [s["packets"] for call_snaps in snaps for s in call_snaps]
    lost = sum(max(0, s - r) for s, r in zip(report.sent, received, strict=True))
    ticks = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
    cores = (cpu1 - cpu0) / wall
    sender_cores = report.cpu_s / max(report.wall_s, 1e-9)
    row: dict[str, Any] = {
        "mode": cfg.mode,
        "calls": n,
        "streams": 2 * n,
        "seconds": cfg.seconds,
        "wall_s": round(wall, 2),
        "setup_s": round(setup_s, 2),
        "drain_s": round(drain_s, 2),
        "drained": drained,
        "encode_s": round(enc_s + report.encode_s, 3),
        "sent": report.total_sent,
        "received": sum(received),
        "lost_by_us": lost,
        "socket_drops": sock_drops,
        "early_packets": early,
        "catch_up_s": round(catch_up_s, 3),
        "socket_backlog_max_kb": round(max(backlog, default=0) / 1024, 1),
        "us_per_packet": round((cpu1 - cpu0) / max(1, sum(received)) * 1e6, 1),
        "send_errors": report.send_errors,
        "jitter_lost": sum(s["lost"] for cs in snaps for s in cs),
        "late": sum(s["late"] for cs in snaps for s in cs),
        "udp_rcvbuf_errors": snmp1.get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0),
        "udp_in_errors": snmp1.get("InErrors", 0) - snmp0.get("InErrors", 0),
        "cores": round(cores, 3),
        "cores_per_call": round(cores / n, 5),
        "loop_cores": round((thread1 - thread0) / wall, 3),
        "sender_cores": round(sender_cores, 3),
        "other_cores": round(max(0.0, ticks - cores - sender_cores), 3),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "loop_lag_ms": {k: _ms(v) for k, v in describe(lags).items() if k != "n"},
        "sender_late_ms": {
            "p50": report.late_p50_ms,
            "p99": report.late_p99_ms,
            "max": report.late_max_ms,
        },
    }
    if asr:
        row.update(_asr_results(calls, variants, placed, offsets, start_at, arrivals, latencies))
        q = [d[0] for d in depth]
        row["queue"] = {
            "max": max(q, default=0),
            "mean": round(sum(q) / len(q), 2) if q else 0.0,
            "max_with_in_flight": max((a + b for a, b in depth), default=0),
            "batches": pool_stats.batches,
            "max_batch_seen": pool_stats.max_batch_seen,
        }
        assert isinstance(pool, TimedPool)
        runs = pool.timed.batches
        span = max(1e-9, t_done - start_at)
        row["asr"] = {
            "submit_to_result_s": {k: _r(v) for k, v in describe(pool.asr_seconds).items()},
            "batch_utterances_mean": _r(sum(b[0] for b in runs) / len(runs)) if runs else None,
            "batch_audio_s_mean": _r(sum(b[1] for b in runs) / len(runs)) if runs else None,
            "batch_run_s": {k: _r(v) for k, v in describe([b[2] for b in runs]).items()},
            "busy_fraction": _r(sum(b[2] for b in runs) / span),
        }
        refs, hyps = row.pop("_refs"), row.pop("_hyps")
        row["wer"] = round(word_error_rate(refs, hyps), 4) if refs else None
        p95 = row["latency_s"]["p95"]
        row["pass"] = p95 is not None and p95 <= P95_TARGET_S and lost == 0 and sock_drops == 0
    else:
        row["pass"] = lost == 0 and sock_drops == 0 and report.send_errors == 0
    if prof is not None and cfg.profile_dir is not None:
        cfg.profile_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.profile_dir / f"{cfg.mode}-{n}.prof"
        prof.dump_stats(path)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        row["profile"] = str(path)
        print(out.getvalue(), file=sys.stderr)
    return row


class TimedEngine:
    """The real engine, timing each packed batch it runs (on the pool's thread)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.batches: list[tuple[int, float, float]] = []  # (utterances, audio s, run s)

    def transcribe_many(self, audios: Any, *, language: str | None = None) -> Any:
        t = time.perf_counter()
        out = self.engine.transcribe_many(audios, language=language)
        audio_s = sum(a.size for a in audios) / 16000
        self.batches.append((len(audios), audio_s, time.perf_counter() - t))
        return out


class TimedPool(AsrPool):
    """The real pool, timing each utterance from submit to result (queue wait + run)."""

    def __init__(self, engine: Any, **kwargs: Any) -> None:
        self.timed = TimedEngine(engine)
        super().__init__(self.timed, **kwargs)  # type: ignore[arg-type]
        self.asr_seconds: list[float] = []

    def submit(self, audio: Any, *, key: str, language: str | None = None) -> Any:
        loop = asyncio.get_running_loop()
        t = loop.time()
        fut = super().submit(audio, key=key, language=language)

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None:
                self.asr_seconds.append(loop.time() - t)

        fut.add_done_callback(done)
        return fut


async def _settle(
    endpoints: list[list[MediaEndpoint]], finished_at: float, jitter_ms: int
) -> float:
    """Wait until no stream takes in another packet; how long after the last send it did."""
    streams = [ep.stream for eps in endpoints for ep in eps if ep.stream is not None]
    last, changed = -1, time.monotonic()
    deadline = changed + 30
    while time.monotonic() < deadline:
        now = sum(st.stats.packets for st in streams)
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > max(0.3, jitter_ms / 1000 * 3):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(jitter_ms / 1000 * 2)  # the jitter buffer plays out its tail
    return max(0.0, changed - finished_at)


def _asr_results(
    calls: list[CallPipeline],
    variants: list[int],
    placed: dict[int, list[Placed]],
    offsets: list[float],
    start_at: float,
    arrivals: list[tuple[float, Any]],
    latencies: list[float],
) -> dict[str, Any]:
    """Latency, WER and matching of recognised utterances to the turns that were sent."""
    by_call: dict[str, list[tuple[float, Any]]] = {}
    for at, utt in arrivals:
        by_call.setdefault(utt.call_id, []).append((at, utt))
    refs: list[str] = []
    hyps: list[str] = []
    e2e: list[float] = []
    unmatched = 0
    missed = 0
    slack = 0.3
    for i, call in enumerate(calls):
        utts = by_call.get(call.call_id, [])
        used: set[int] = set()
        for p in placed[variants[i]]:
            hits = [
                (at, u)
                for at, u in utts
                if u.channel == p.channel
                and u.start_ms / 1000 < p.end_s + slack
                and u.end_ms / 1000 > p.start_s - slack
            ]
            used.update(u.sequence for _, u in hits)
            refs.append(p.text)
            hyps.append(" ".join(u.text for _, u in sorted(hits, key=lambda h: h[1].start_ms)))
            if hits:
                # the turn's last audio left the sender at start + offset + end_s
                e2e.append(max(at for at, _ in hits) - (start_at + offsets[i] + p.end_s))
            else:
                missed += 1
        unmatched += sum(1 for _, u in utts if u.sequence not in used)
    lat = describe(latencies)
    return {
        "utterances": len(arrivals),
        "turns": len(refs),
        "turns_missed": missed,
        "utterances_unmatched": unmatched,
        "latency_s": {k: _r(v) for k, v in lat.items() if k != "n"},
        "turn_end_to_event_s": {k: _r(v) for k, v in describe(e2e).items() if k != "n"},
        "_refs": refs,
        "_hyps": hyps,
    }


def _r(v: Any) -> Any:
    return round(v, 3) if isinstance(v, float) else v


def _ms(v: Any) -> Any:
    return round(v * 1000, 2) if isinstance(v, float) else v


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


ASR_COLUMNS: list[tuple[str, Any]] = [
    ("N", lambda r: r["calls"]),
    ("p50 s", lambda r: r["latency_s"]["p50"]),
    ("p95 s", lambda r: r["latency_s"]["p95"]),
    ("p99 s", lambda r: r["latency_s"]["p99"]),
    ("e2e p95 s", lambda r: r["turn_end_to_event_s"]["p95"]),
    ("asr p95 s", lambda r: r["asr"]["submit_to_result_s"]["p95"]),
    ("asr busy", lambda r: r["asr"]["busy_fraction"]),
    ("utts", lambda r: r["utterances"]),
    ("WER", lambda r: r["wer"]),
    ("cores/call", lambda r: f"{r['cores_per_call']:.4f}"),
    ("cores", lambda r: r["cores"]),
    ("loop", lambda r: r["loop_cores"]),
    ("sender", lambda r: r["sender_cores"]),
    ("others", lambda r: r["other_cores"]),
    ("sent", lambda r: r["sent"]),
    ("lost", lambda r: r["lost_by_us"]),
    ("sock drops", lambda r: r["socket_drops"]),
    ("backlog KB", lambda r: r["socket_backlog_max_kb"]),
    ("q max", lambda r: r["queue"]["max"]),
    ("q mean", lambda r: r["queue"]["mean"]),
    ("lag p99 ms", lambda r: r["loop_lag_ms"]["p99"]),
    ("pass", lambda r: r["pass"]),
]

MEDIA_COLUMNS: list[tuple[str, Any]] = [
    ("N", lambda r: r["calls"]),
    ("streams", lambda r: r["streams"]),
    ("sent", lambda r: r["sent"]),
    ("received", lambda r: r["received"]),
    ("lost", lambda r: r["lost_by_us"]),
    ("sock drops", lambda r: r["socket_drops"]),
    ("RcvbufErr", lambda r: r["udp_rcvbuf_errors"]),
    ("backlog KB", lambda r: r["socket_backlog_max_kb"]),
    ("catch-up s", lambda r: r["catch_up_s"]),
    ("cores/call", lambda r: f"{r['cores_per_call']:.4f}"),
    ("us/pkt", lambda r: r["us_per_packet"]),
    ("cores", lambda r: r["cores"]),
    ("loop", lambda r: r["loop_cores"]),
    ("sender", lambda r: r["sender_cores"]),
    ("others", lambda r: r["other_cores"]),
    ("lag p50 ms", lambda r: r["loop_lag_ms"]["p50"]),
    ("lag p99 ms", lambda r: r["loop_lag_ms"]["p99"]),
    ("lag max ms", lambda r: r["loop_lag_ms"]["max"]),
    ("send late p99 ms", lambda r: r["sender_late_ms"]["p99"]),
    ("pass", lambda r: r["pass"]),
]


def table(rows: list[dict[str, Any]], columns: list[tuple[str, Any]]) -> str:
    head = [c for c, _ in columns]
    body = [[_fmt(get(r)) for _, get in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append(" | ".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def capacity(rows: list[dict[str, Any]]) -> int | None:
    passed = [r["calls"] for r in rows if r["pass"]]
    return max(passed) if passed else None


def _calls(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"call counts must be integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"call counts must be positive: {text!r}")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=_calls, help=f"N values (asr {DEFAULT_ASR_CALLS})")
    ap.add_argument(
        "--media-calls", type=_calls, default=_calls(DEFAULT_MEDIA_CALLS), help="media-only Ns"
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--media-only", action="store_true", help="no ASR: receive and count")
    mode.add_argument("--asr-only", action="store_true", help="skip the media-only sweep")
    ap.add_argument("--seconds", type=float, default=45.0, help="length of each call")
    ap.add_argument("--stagger", type=float, default=3.0, help="spread of call start times, s")
    ap.add_argument("--jitter-ms", type=int, default=60, help="jitter buffer depth")
    ap.add_argument("--max-batch", type=int, default=8, help="AsrPool max_batch")
    ap.add_argument(
        "--silence-ms", type=int, help="endpointer silence before an utterance ends (default 400)"
    )
    ap.add_argument("--threads", type=int, default=2, help="CTranslate2 threads")
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument(
        "--asr-nice",
        type=int,
        default=0,
        help="experiment: run Whisper's compute threads at this niceness (RTP edge keeps 0)",
    )
    ap.add_argument("--record", action="store_true", help="media-only: also write WAVs")
    ap.add_argument("--profile", type=Path, help="cProfile the loop thread into this folder")
    ap.add_argument("--ports", default="30000-39999", help="RTP port range")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "realtime.json")
    args = ap.parse_args()
    if args.seconds < 5:
        ap.error("--seconds must be at least 5 (a call needs room for a turn)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    sweeps: list[tuple[str, list[int]]] = []
    if args.media_only:
        sweeps.append(("media", args.calls or args.media_calls))
    else:
        sweeps.append(("asr", args.calls or _calls(DEFAULT_ASR_CALLS)))
        if not args.asr_only:
            sweeps.append(("media", args.media_calls))
    low, _, high = args.ports.partition("-")
    allocator = PortAllocator(int(low), int(high))
    recordings = load_corpus()

    engine = None
    if any(m == "asr" for m, _ in sweeps):
        from sipscribe.asr.models import resolve_model
        from sipscribe.asr.whisper import WhisperEngine

        model = resolve_model(args.model, cache_dir=ROOT / "data" / "models")

        def load() -> WhisperEngine:
            # CTranslate2's compute threads are created here and inherit this niceness
            if args.asr_nice:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), args.asr_nice)
            eng = WhisperEngine(model, threads=args.threads)
            eng.transcribe(recordings[0].audio)  # warm-up
            eng.transcribe_many([r.audio for r in recordings[:3]])
            return eng

        with ThreadPoolExecutor(1, thread_name_prefix="load") as ex:
            engine = ex.submit(load).result()

    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "settings": {
            "model": args.model,
            "threads": args.threads,
            "asr_nice": args.asr_nice,
            "max_batch": args.max_batch,
            "silence_ms": args.silence_ms or EndpointerConfig().silence_ms,
            "jitter_ms": args.jitter_ms,
            "seconds": args.seconds,
            "stagger_s": args.stagger,
            "codec": "PCMU",
            "p95_target_s": P95_TARGET_S,
        },
    }
    sender = Sender()
    started = time.monotonic()
    try:
        for mode_name, ns in sweeps:
            cfg = TrialConfig(
                mode=mode_name,
                seconds=args.seconds,
                stagger_s=args.stagger,
                jitter_ms=args.jitter_ms,
                max_batch=args.max_batch,
                silence_ms=args.silence_ms,
                record=args.record and mode_name == "media",
                profile_dir=args.profile,
            )
            rows = []
            for n in ns:
                print(f"[{mode_name}] {n} calls for {args.seconds:.0f} s ...", file=sys.stderr)
                row = asyncio.run(run_trial(n, cfg, sender, recordings, allocator, engine))
                rows.append(row)
                print(
                    table([row], ASR_COLUMNS if mode_name == "asr" else MEDIA_COLUMNS),
                    file=sys.stderr,
                )
            columns = ASR_COLUMNS if mode_name == "asr" else MEDIA_COLUMNS
            cap = capacity(rows)
            cap_text = f"{cap} calls" if cap else "none of the Ns tested"
            title = (
                f"ASR mode ({args.model}, threads={args.threads}, max_batch={args.max_batch}"
                f"{f', asr nice {args.asr_nice}' if args.asr_nice else ''}):"
                f" capacity {cap_text} at p95 <= {P95_TARGET_S} s, no loss"
                if mode_name == "asr"
                else f"media-only mode: capacity {cap_text} with no loss"
            )
            print(f"\n{title}\n{table(rows, columns)}\n")
            result[mode_name] = {"capacity_calls": cap, "rows": rows}
    finally:
        sender.close()
    result["total_s"] = round(time.monotonic() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json} ({result['total_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
