"""The real-time pipeline on real speech: PCM frames in, ordered events out."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from sipscribe.asr.evaluation import word_error_rate
from sipscribe.asr.pool import AsrPool
from sipscribe.media.resample import resample
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.call import CallPipeline, PipelineContext
from sipscribe.testing.corpus import build_conversation

FRAME = 160  # 20 ms at 8 kHz


def to_pcm8k(track: np.ndarray) -> np.ndarray:
    return (np.clip(resample(track, 16000, 8000), -1, 1) * 32767).astype(np.int16)


async def feed_call(
    call: CallPipeline, tracks: list[np.ndarray], *, pause_window: tuple[int, int] | None = None
) -> None:
    streams = list(call.streams.values())
    n = min(t.size for t in tracks)
    for k, i in enumerate(range(0, n, FRAME)):
        if pause_window and k == pause_window[0]:
            call.pause()
        if pause_window and k == pause_window[1]:
            call.resume()
        for s, t in zip(streams, tracks, strict=True):
            s.feed(t[i : i + FRAME])
        if k % 25 == 0:
            await asyncio.sleep(0)  # let recognition run, as the event loop would


@pytest.fixture
async def ctx(engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    pool = AsrPool(engine, max_batch=8)
    await pool.start()
    latencies: list[float] = []
    context = PipelineContext(
        pool=pool, bus=EventBus(), recordings_dir=tmp_path / "rec", on_latency=latencies.append
    )
    context.latencies = latencies  # type: ignore[attr-defined]
    yield context
    await pool.stop()


async def collect(bus: EventBus) -> list:  # type: ignore[type-arg]
    sub = bus.subscribe("test")
    out = []

    async def run() -> None:
        async for ev in sub:
            out.append(ev)
            if ev.type == "call.ended":
                return

    return out, asyncio.create_task(run())  # type: ignore[return-value]


async def test_two_party_call_events(ctx: PipelineContext, corpus) -> None:  # type: ignore[no-untyped-def]
    tracks, placed = build_conversation(corpus[:6], gap_s=1.0)
    pcm = [to_pcm8k(t) for t in tracks]
    events, task = await collect(ctx.bus)  # type: ignore[misc]
    call = CallPipeline(ctx, "call-1", external_id="guid-1")
    await call.start()
    call.add_stream("s0", channel=0, role="agent", input_rate=8000, codec="PCMU", label="0")
    call.add_stream("s1", channel=1, role="customer", input_rate=8000, codec="PCMU", label="1")
    await feed_call(call, pcm)
    await asyncio.wait_for(call.end(), 120)
    await asyncio.wait_for(task, 5)

    types = [e.type for e in events]
    assert types[0] == "call.started" and types[-1] == "call.ended"
    assert types[1:3] == ["stream.started", "stream.started"]
    assert types[-3:-1] == ["stream.stopped", "stream.stopped"]
    utts = [e.utterance for e in events if e.type == "utterance"]
    assert [u.sequence for u in utts] == list(range(1, len(utts) + 1))
    assert events[-1].utterances == len(utts)
    for p in placed:
        hits = [u for u in utts if u.start_ms / 1000 < p.end_s and u.end_ms / 1000 > p.start_s]
        assert hits and {u.channel for u in hits} == {p.channel}
        assert {u.role for u in hits} == {("agent", "customer")[p.channel]}
        assert abs(hits[0].start_ms / 1000 - p.start_s) <= 0.3
    refs = [p.text for p in placed]
    hyps = [
        " ".join(
            u.text for u in utts if u.start_ms / 1000 < p.end_s and u.end_ms / 1000 > p.start_s
        )
        for p in placed
    ]
    assert word_error_rate(refs, hyps) <= 0.15
    for u in utts:
        assert u.recognized_at >= u.speech_ended_at
    assert len(ctx.latencies) == len(utts)  # type: ignore[attr-defined]
    # recordings line up with the input sample for sample
    for s, track in zip(("s0", "s1"), pcm, strict=True):
        path = next((ctx.recordings_dir / "call-1").glob(f"*-{s}.wav"))
        with wave.open(str(path)) as w:
            assert w.getframerate() == 8000
            data = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        assert np.array_equal(data, track[: data.size]) and data.size >= track.size - FRAME


async def test_pause_skips_transcription_but_counters_run(ctx: PipelineContext, corpus) -> None:  # type: ignore[no-untyped-def]
    recs = corpus[:4]
    tracks, placed = build_conversation(recs, gap_s=1.0, channels=1)
    pcm = [to_pcm8k(tracks[0])]
    # pause over the whole second and third turns
    a = int(placed[1].start_s * 50) - 10
    b = int(placed[2].end_s * 50) + 10
    events, task = await collect(ctx.bus)  # type: ignore[misc]
    call = CallPipeline(ctx, "call-2")
    await call.start()
    stream = call.add_stream("m", channel=0, role=None, input_rate=8000)
    await feed_call(call, pcm, pause_window=(a, b))
    await asyncio.wait_for(call.end(), 120)
    await asyncio.wait_for(task, 5)
    utts = [e.utterance for e in events if e.type == "utterance"]
    spans = [(u.start_ms / 1000, u.end_ms / 1000) for u in utts]
    for p in (placed[1], placed[2]):
        assert not any(s < p.end_s and e > p.start_s for s, e in spans), "paused audio leaked"
    for p in (placed[0], placed[3]):
        assert any(s < p.end_s and e > p.start_s for s, e in spans)
    stats = next(e for e in events if e.type == "stream.stopped").stats
    assert stats["audio_ms"] == pytest.approx(pcm[0].size / 8, abs=1)
    assert stats["paused_ms"] == pytest.approx((b - a) * 20, abs=40)
    assert stream.paused is False


async def test_dtmf_events_are_ordered_with_the_call(ctx: PipelineContext) -> None:
    events, task = await collect(ctx.bus)  # type: ignore[misc]
    call = CallPipeline(ctx, "call-3")
    await call.start()
    s = call.add_stream("s", channel=1, role="customer", input_rate=8000)
    s.feed(np.zeros(8000, np.int16))
    s.dtmf("5", start_ms=1000, duration_ms=120)
    await call.end()
    await asyncio.wait_for(task, 5)
    dtmf = [e for e in events if e.type == "dtmf"]
    assert len(dtmf) == 1 and dtmf[0].to_json()["digit"] == "5"
    assert dtmf[0].role == "customer"


async def test_duplicate_stream_rejected(ctx: PipelineContext) -> None:
    call = CallPipeline(ctx, "call-4")
    await call.start()
    call.add_stream("s", channel=0, role=None, input_rate=8000)
    with pytest.raises(ValueError, match="already has stream"):
        call.add_stream("s", channel=1, role=None, input_rate=8000)
    await call.end()
