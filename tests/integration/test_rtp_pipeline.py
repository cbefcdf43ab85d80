"""Real speech as RTP over loopback UDP, with loss, reordering and jitter, per codec."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sipscribe.asr.evaluation import word_error_rate
from sipscribe.asr.pool import AsrPool
from sipscribe.media.ports import PortAllocator
from sipscribe.media.srtp import CryptoAttribute, SrtpSender
from sipscribe.media.stream import (
    MediaEndpoint,
    MediaStream,
    MediaStreamConfig,
    PayloadFormat,
    output_rate,
)
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.call import CallPipeline, PipelineContext
from sipscribe.testing.corpus import build_conversation
from sipscribe.testing.rtp import CODECS, Impairments, encode_frames, packetize, schedule, send_rtp

pytestmark = pytest.mark.integration


def config_for(codec: str, crypto: CryptoAttribute | None = None) -> MediaStreamConfig:
    spec = CODECS[codec]
    channels = 2 if codec == "opus" else 1
    return MediaStreamConfig(
        payload_types={
            spec.payload_type: PayloadFormat(spec.name, spec.clock_rate, channels),
            101: PayloadFormat("telephone-event", 8000),
        },
        remote_crypto=crypto,
    )


async def run_call(
    ctx: PipelineContext,
    allocator: PortAllocator,
    call_id: str,
    codec: str,
    tracks: list[np.ndarray],
    *,
    imp: Impairments,
    crypto: CryptoAttribute | None = None,
    tamper: int = 0,
):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    call = CallPipeline(ctx, call_id)
    await call.start()
    endpoints, senders = [], []
    for ch, track in enumerate(tracks):
        cfg = config_for(codec, crypto)
        sink = call.add_stream(
            f"{call_id}-{ch}",
            channel=ch,
            role=("agent", "customer")[ch],
            input_rate=output_rate(cfg),
            codec=codec,
        )
        ep = await MediaEndpoint.open("127.0.0.1", allocator)
        ep.attach(MediaStream(cfg, sink, clock=loop.time))
        endpoints.append(ep)
        packets = packetize(
            encode_frames(track, codec), codec, ssrc=0x1234 + ch, seq0=65500 if ch == 0 else 10
        )  # stream 0 wraps its seq number
        plan, report = schedule(
            packets, Impairments(imp.loss, imp.reorder, imp.duplicate, imp.jitter_ms, seed=ch + 1)
        )
        protect = SrtpSender(crypto) if crypto else None
        senders.append((plan, report, protect, ep.port))
    results = await asyncio.gather(
        *[
            send_rtp(plan, ("127.0.0.1", port), protect=protect)
            for plan, _, protect, port in senders
        ]
    )
    if tamper:
        # forged packets with a broken auth tag must be counted and dropped, never decoded
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(tamper):
            s.sendto(b"\x80\x00" + bytes(40 + i), ("127.0.0.1", endpoints[0].port))
        s.close()
    await asyncio.sleep(0.3)
    stats = []
    for ep in endpoints:
        stats.append(ep.stream.snapshot())  # type: ignore[union-attr]
        ep.close()
    await asyncio.wait_for(call.end(), 120)
    return results, [s[1] for s in senders], stats


def score(events, placed, call_id):  # type: ignore[no-untyped-def]
    utts = [e.utterance for e in events if e.type == "utterance" and e.call_id == call_id]
    refs, hyps = [], []
    for p in placed:
        hits = [
            u
            for u in utts
            if u.start_ms / 1000 < p.end_s + 0.5 and u.end_ms / 1000 > p.start_s - 0.5
        ]
        assert {u.channel for u in hits} <= {p.channel}, (call_id, p, hits)
        refs.append(p.text)
        hyps.append(" ".join(u.text for u in hits))
    detail = "\n".join(f"  ref: {r}\n  hyp: {h}" for r, h in zip(refs, hyps, strict=True))
    return word_error_rate(refs, hyps), detail


@pytest.fixture
async def ctx(engine):  # type: ignore[no-untyped-def]
    pool = AsrPool(engine, max_batch=8)
    await pool.start()
    yield PipelineContext(pool=pool, bus=EventBus())
    await pool.stop()


async def test_every_codec_with_loss_reorder_jitter(ctx: PipelineContext, corpus) -> None:  # type: ignore[no-untyped-def]
    """Five calls at once, one per codec, real-time pace, 2 % loss plus reordering/jitter."""
    sub = ctx.bus.subscribe("t")
    allocator = PortAllocator(40000, 40100)
    recs = corpus[:6]
    tracks, placed = build_conversation(recs, gap_s=1.0)
    imp = Impairments(loss=0.02, reorder=0.02, duplicate=0.01, jitter_ms=15)
    codecs = ["PCMU", "PCMA", "G722", "G729", "opus"]
    outs = await asyncio.gather(
        *[run_call(ctx, allocator, f"call-{c}", c, tracks, imp=imp) for c in codecs]
    )
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    for codec, (_, reports, stats) in zip(codecs, outs, strict=True):
        wer, detail = score(events, placed, f"call-{codec}")
        assert wer <= 0.15, f"{codec}: WER {wer:.3f}\n{detail}"
        for st, rep in zip(stats, reports, strict=True):
            assert st["lost"] >= rep.dropped * 0.5, (codec, st, rep)
            assert st["duplicated"] >= 1 or rep.duplicated == 0
            assert st["codec"] == codec
    assert allocator.in_use == 0, "ports are given back"


async def test_srtp_both_suites_and_forged_packets(ctx: PipelineContext, corpus) -> None:  # type: ignore[no-untyped-def]
    sub = ctx.bus.subscribe("t")
    allocator = PortAllocator(40200, 40300)
    tracks, placed = build_conversation(corpus[:2], gap_s=1.0)
    for suite in ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"):
        crypto = CryptoAttribute.generate(1, suite)
        _, _, stats = await run_call(
            ctx,
            allocator,
            f"srtp-{suite}",
            "PCMU",
            tracks,
            imp=Impairments(),
            crypto=crypto,
            tamper=5,
        )
        assert stats[0]["auth_failures"] >= 5
        assert stats[0]["decode_errors"] == 0
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    for suite in ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"):
        wer, _ = score(events, placed, f"srtp-{suite}")
        assert wer <= 0.15, (suite, wer)


async def test_dtmf_digits_reach_the_bus_not_the_audio(ctx: PipelineContext) -> None:
    from sipscribe.media.dtmf import DtmfSender

    sub = ctx.bus.subscribe("t")
    loop = asyncio.get_running_loop()
    allocator = PortAllocator(40400, 40410)
    call = CallPipeline(ctx, "dtmf-call")
    await call.start()
    cfg = config_for("PCMU")
    sink = call.add_stream("d0", channel=1, role="customer", input_rate=8000)
    ep = await MediaEndpoint.open("127.0.0.1", allocator)
    ep.attach(MediaStream(cfg, sink, clock=loop.time))
    silence = packetize(encode_frames(np.zeros(16000, np.float32), "PCMU"), "PCMU", ssrc=9)
    plan = [(i * 20.0, p) for i, p in enumerate(silence)]
    dt = DtmfSender(101, 9).packets(
        "12#",
        sequence_number=silence[-1].sequence_number + 1,
        timestamp=silence[-1].timestamp + 160,
        start_ms=1000,
    )
    plan += [(sp.send_ms, sp.packet) for sp in dt]
    await send_rtp(sorted(plan, key=lambda x: x[0]), ("127.0.0.1", ep.port))
    await asyncio.sleep(0.7)
    ep.close()
    await call.end()
    digits = []
    while not sub.queue.empty():
        ev = sub.queue.get_nowait()
        if ev.type == "dtmf":
            digits.append(ev.digit)
    assert digits == ["1", "2", "#"]
    assert sink.stats()["audio_ms"] == pytest.approx(1000, abs=100), "digits never enter audio"
