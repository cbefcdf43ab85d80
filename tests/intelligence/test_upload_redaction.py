"""Uploaded recordings lose what the transcript masks: the card digits are silenced in the
stored file (per channel, lossless WAV), before the call is "stored" or bundled."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sipscribe.intelligence.recording_redactor import CallSpans, redact_recording
from sipscribe.intelligence.redacting_sink import RedactingSink
from sipscribe.intelligence.redaction import RedactionPolicy, SensitiveKind, TimeSpan
from sipscribe.media.audiofile import probe, read_channels, write_audio
from sipscribe.media.resample import resample
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.events import CallStarted, StreamStopped, UtteranceEvent
from sipscribe.pipeline.utterance import Utterance, UtteranceWord
from sipscribe.testing.corpus import Recording, build_conversation, trim_silence

ESPEAK = shutil.which("espeak-ng")
# Varied digits: Whisper tiny loops on "one one one one …" until its token limit (~40 s).
CARD_SENTENCE = (
    "My card number is four five three nine, one four eight eight, zero three four three, "
    "six four six seven."
)
CARD = TimeSpan(1000, 1500, SensitiveKind.CARD_NUMBER)


def read_pcm16(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit WAV as samples × channels, and its rate."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data.reshape(-1, w.getnchannels()), w.getframerate()


def noise(seconds: float, rate: int, channels: int = 2, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.5, 0.5, (int(seconds * rate), channels))).astype(np.float32)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- the file rewrite -----------------------------------------------------------------


def test_wav_is_silenced_on_one_channel_and_bit_exact_elsewhere(tmp_path: Path) -> None:
    rate = 8000
    audio = noise(3.3, rate)
    path = write_audio(tmp_path / "call.wav", [audio[:, 0], audio[:, 1]], rate=rate)
    before, _ = read_pcm16(path)

    out = redact_recording(path, {1: [CARD]}, pad_ms=400)

    assert out == path
    after, out_rate = read_pcm16(out)
    assert out_rate == rate and after.shape == before.shape
    a, b = (1000 - 400) * rate // 1000, (1500 + 400) * rate // 1000
    assert not after[a:b, 1].any(), "the padded span is silent on channel 1"
    assert np.array_equal(after[:a, 1], before[:a, 1])
    assert np.array_equal(after[b:, 1], before[b:, 1])
    assert np.array_equal(after[:, 0], before[:, 0]), "the other party is untouched"
    assert not list(tmp_path.glob("*.redacting.*")), "no temporary file is left"


def test_mp3_becomes_a_redacted_wav_and_the_original_is_gone(tmp_path: Path) -> None:
    rate = 44100  # 44.1 samples per ms: spans must not drift across one-second blocks
    audio = noise(4.2, rate, seed=3) * 0.5
    path = write_audio(tmp_path / "call.mp3", [audio[:, 0], audio[:, 1]], rate=rate, kind="mp3")
    decoded = np.stack(read_channels(path, rate=rate), axis=1)
    late = TimeSpan(3100, 3300, SensitiveKind.CARD_NUMBER)

    out = redact_recording(path, {0: [CARD, late]}, pad_ms=0)

    assert out == tmp_path / "call.wav" and not path.exists()
    info = probe(out)
    assert (info.codec, info.channels, info.source_rate) == ("pcm_s16le", 2, rate)
    after, _ = read_pcm16(out)
    n = min(len(after), len(decoded))
    assert abs(len(after) - len(decoded)) < rate // 100
    silent = np.zeros(n, dtype=bool)
    for span in (CARD, late):
        a, b = span.start_ms * rate // 1000, -(-span.end_ms * rate // 1000)
        assert not after[a:b, 0].any(), span
        silent[a:b] = True
    assert correlation(after[:n, 0][~silent], decoded[:n, 0][~silent]) > 0.999
    assert correlation(after[:n, 1], decoded[:n, 1]) > 0.999


def test_tone_mode_replaces_the_span_with_a_beep(tmp_path: Path) -> None:
    rate = 16000
    audio = noise(2.0, rate, channels=1)
    path = write_audio(tmp_path / "call.flac", [audio[:, 0]], rate=rate, kind="flac")

    out = redact_recording(path, {0: [CARD]}, mode="tone", pad_ms=0)

    after, _ = read_pcm16(out)
    beep = after[16000:24000, 0].astype(np.float64)
    t = np.arange(16000, 24000) / rate
    assert correlation(beep, np.sin(2 * np.pi * 1000.0 * t)) > 0.99
    assert not (tmp_path / "call.flac").exists()


# -- the spans, off the real redaction sink ---------------------------------------------


def utterance(call_id: str, channel: int, seq: int, start_ms: int, text: str) -> Utterance:
    words, t = [], start_ms
    for token in text.split():
        words.append(UtteranceWord(" " + token, t, t + 300, 0.9))
        t += 400
    return Utterance(
        call_id=call_id,
        stream_id=f"{call_id}:{channel}",
        channel=channel,
        role=None,
        sequence=seq,
        start_ms=start_ms,
        end_ms=t,
        text=text,
        words=tuple(words),
    )


async def test_call_spans_come_per_channel_once_the_streams_stop() -> None:
    """A card split over two utterances: the first is held for the rest; stopping the
    stream releases it long before the sink's hold (8 s) would."""
    raw, public = EventBus(), EventBus()
    sink = RedactingSink(public)
    task = asyncio.create_task(sink.run(raw.subscribe("redaction")))
    other = public.subscribe("other", maxsize=100_000)  # live calls' subscribers go on
    try:
        async with CallSpans(public, "c1", ["c1:0", "c1:1"]) as spans:
            await raw.publish(CallStarted(call_id="c1", source="upload"))
            await raw.publish(CallStarted(call_id="c2", source="siprec"))
            await raw.publish(UtteranceEvent(utterance("c1", 0, 1, 0, "what is the number")))
            await raw.publish(UtteranceEvent(utterance("c1", 1, 2, 2000, "it is 4111 1111")))
            await raw.publish(UtteranceEvent(utterance("c2", 1, 1, 0, "4111 1111 1111 1111")))
            await raw.publish(UtteranceEvent(utterance("c1", 1, 3, 4000, "1111 1111")))
            await raw.publish(UtteranceEvent(utterance("c1", 1, 4, 6000, "and 5555 5555")))
            for stream in ("c1:0", "c1:1"):
                await raw.publish(StreamStopped(call_id="c1", stream_id=stream))
            got = await spans.wait(timeout=3)
        assert set(got) == {1}, "only the caller's channel, only this call"
        assert [(s.start_ms, s.end_ms) for s in got[1]] == [(2800, 3500), (4000, 4700)]
        assert sink.held == 0
        assert [s.name for s in public.subscribers] == ["other"], "unsubscribed"
    finally:
        await raw.close()
        await task
        other.queue.put_nowait(None)


async def test_call_spans_unsubscribe_when_the_call_fails_before_they_ran() -> None:
    bus = EventBus()
    with pytest.raises(RuntimeError, match="ASR failed"):
        async with CallSpans(bus, "c1", ["c1:0"]):
            raise RuntimeError("ASR failed")
    assert bus.subscribers == []


# -- a real upload through the API ------------------------------------------------------


def synthesize(tmp: Path, text: str) -> np.ndarray:
    wav = tmp / "caller.wav"
    subprocess.run(
        [ESPEAK, "-v", "en-us", "-s", "125", "-g", "4", "-w", str(wav), text],
        check=True,
        timeout=60,
    )
    return trim_silence(read_channels(wav, rate=16000)[0])


@pytest.fixture
def conversation(tmp_path: Path, corpus: list[Recording]) -> list[np.ndarray]:
    """Agent (a corpus reading) on channel 0, the caller reading a card on channel 1."""
    if ESPEAK is None:
        pytest.skip("espeak-ng not installed")
    caller = Recording("caller", CARD_SENTENCE, synthesize(tmp_path, CARD_SENTENCE))
    tracks, _ = build_conversation([corpus[4], caller], gap_s=1.0)
    return tracks


async def upload(server: Any, path: Path, mime: str) -> str:
    from tests.integration.sipp import api

    with path.open("rb") as fh:
        r = await api(
            server,
            "POST",
            "/api/v2/calls",
            files={"file": (path.name, fh, mime)},
            data={"roles": "agent,customer"},
        )
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


async def stored(server: Any, call_id: str) -> list[tuple[int, list[dict[str, Any]]]]:
    """The masked words of each utterance with its channel, once the call is stored."""
    from tests.integration.sipp import api

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        r = await api(server, "GET", f"/api/v2/calls/{call_id}")
        state = r.json()["data"]["transcription_state"]
        assert state != "speech_recognition_failed", r.json()
        if state == "speech_stored":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"call {call_id} was never stored")
    r = await api(server, "GET", f"/api/v2/calls/{call_id}/transcription")
    customer = " ".join(u["text"] for u in r.json()["data"]["payload"] if u["channel"] == 1)
    if "#" not in customer:  # the synthetic voice was not heard as digits: nothing to prove
        pytest.skip(f"the card was not recognised as digits: {customer!r}")
    assert not any(c.isdigit() for c in customer), customer
    from sipscribe.store.utterances import list_utterances

    async with server.services.database.session() as s:
        call = await _call(server, call_id)
        rows = await list_utterances(s, call_id=call_id, tenant_id=call.tenant_id)
    masked = [(u.channel, [w for w in u.words or [] if "#" in w["word"]]) for u in rows]
    return [(ch, words) for ch, words in masked if words]


async def _call(server: Any, call_id: str) -> Any:
    from sipscribe.store.models import CallRecord

    async with server.services.database.session() as s:
        return await s.get(CallRecord, call_id)


def masked_region(
    masked: list[tuple[int, list[dict[str, Any]]]], n: int, rate: int, pad_ms: int
) -> np.ndarray:
    """Samples that may be silenced: from each utterance's first masked word to its last
    (a span runs over the words between), widened by the padding and 5 ms of rounding."""
    region = np.zeros(n, dtype=bool)
    for _, words in masked:
        a = min(w["start_ms"] for w in words) - pad_ms - 5
        b = max(w["end_ms"] for w in words) + pad_ms + 5
        region[max(0, a * rate // 1000) : b * rate // 1000] = True
    return region


def assert_silent(
    masked: list[tuple[int, list[dict[str, Any]]]], audio: np.ndarray, rate: int
) -> None:
    """Every masked word is silent in the caller's channel."""
    assert {ch for ch, _ in masked} == {1}, masked
    for _, words in masked:
        for w in words:
            a, b = w["start_ms"] * rate // 1000, w["end_ms"] * rate // 1000
            assert not audio[a:b, 1].any(), w


async def start_with_vcon_bundles(tmp_path: Path, engine: Any) -> tuple[Any, Any]:
    """The server, sending every call's vCon (recording inline) to a local receiver."""
    from tests.delivery.receiver import ReceiverApp, Served
    from tests.integration.sipp import api, start_server

    server = await start_server(tmp_path, engine)
    receiver = ReceiverApp(secret="")
    server.delivery.options = dataclasses.replace(
        server.delivery.options, inline_recording_max_bytes=50_000_000, bundle_check_s=0.1
    )
    served = await Served(receiver).start()
    served.receiver = receiver  # type: ignore[attr-defined]
    from sipscribe.store import tenants as tenant_store

    async with server.services.database.session() as s:
        tenant = await tenant_store.get_or_create_tenant(s, name="default")
        tenant.settings = {**(tenant.settings or {}), "allow_private_webhooks": True}
        await s.commit()
    r = await api(
        server,
        "POST",
        "/api/v2/webhooks",
        json={
            "url": f"http://127.0.0.1:{served.port}/vcon",
            "events": ["bundle"],
            "format": "vcon",
        },
    )
    assert r.status_code == 201, r.text
    return server, served


async def bundled_recording(served: Any, call_id: str) -> tuple[str, bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        for hook in served.receiver.hooks("/vcon"):
            for dialog in hook.json.get("dialog", []):
                if dialog.get("type") == "recording" and dialog.get("body"):
                    body = dialog["body"] + "=" * (-len(dialog["body"]) % 4)
                    return dialog["filename"], base64.urlsafe_b64decode(body)
        await asyncio.sleep(0.1)
    raise AssertionError("no vCon bundle with the recording arrived")


async def stop(server: Any, served: Any) -> None:
    await server.stop(drain_timeout=1)
    served.server.should_exit = True
    if served.task is not None:
        await served.task


@pytest.mark.integration
async def test_uploaded_wav_is_silenced_where_the_card_was_read(  # type: ignore[no-untyped-def]
    tmp_path: Path, engine, conversation: list[np.ndarray]
) -> None:
    rate = 8000
    original = tmp_path / "call.wav"
    write_audio(original, [resample(t, 16000, rate) for t in conversation], rate=rate)
    before, _ = read_pcm16(original)
    server, served = await start_with_vcon_bundles(tmp_path, engine)
    try:
        call_id = await upload(server, original, "audio/wav")
        masked = await stored(server, call_id)
        call = await _call(server, call_id)
        stored_path = Path(call.recording_path)
        filename, body = await bundled_recording(served, call_id)
    finally:
        await stop(server, served)

    assert stored_path.name == "call.wav"
    after, out_rate = read_pcm16(stored_path)
    assert out_rate == rate and after.shape == before.shape
    assert_silent(masked, after, rate)
    region = masked_region(masked, len(after), rate, 400)
    changed = after[:, 1] != before[:, 1]
    assert changed.any() and not changed[~region].any(), "only around the masked words"
    assert correlation(after[~region, 1], before[~region, 1]) == pytest.approx(1.0)
    assert np.array_equal(after[:, 0], before[:, 0]), "the agent's channel is untouched"
    # the completion bundle carries the redacted file, never the upload
    assert filename == "call.wav"
    assert hashlib.sha256(body).digest() == hashlib.sha256(stored_path.read_bytes()).digest()


@pytest.mark.integration
async def test_uploaded_mp3_ends_as_a_redacted_wav(  # type: ignore[no-untyped-def]
    tmp_path: Path, engine, conversation: list[np.ndarray]
) -> None:
    rate = 22050
    original = write_audio(
        tmp_path / "call.mp3",
        [resample(t, 16000, rate) for t in conversation],
        rate=rate,
        kind="mp3",
    )
    decoded = np.stack(read_channels(original, rate=rate), axis=1)
    server, served = await start_with_vcon_bundles(tmp_path, engine)
    try:
        call_id = await upload(server, original, "audio/mpeg")
        masked = await stored(server, call_id)
        call = await _call(server, call_id)
        stored_path = Path(call.recording_path)
        filename, body = await bundled_recording(served, call_id)
    finally:
        await stop(server, served)

    assert stored_path.name == "call.wav" and stored_path.is_file()
    assert list(stored_path.parent.iterdir()) == [stored_path], "the MP3 was not kept"
    info = probe(stored_path)
    assert (info.codec, info.channels, info.source_rate) == ("pcm_s16le", 2, rate)
    after = read_pcm16(stored_path)[0].astype(np.float32) / 32768
    n = min(len(after), len(decoded))
    assert_silent(masked, after, rate)
    region = masked_region(masked, n, rate, 400)
    assert correlation(after[:n, 1][~region], decoded[:n, 1][~region]) > 0.999
    assert correlation(after[:n, 0], decoded[:n, 0]) > 0.999
    assert filename == "call.wav" and body == stored_path.read_bytes()


# -- the runner on its own buses ---------------------------------------------------------


@contextlib.asynccontextmanager
async def runner_on(
    tmp_path: Path, engine: Any, path: Path, policy: RedactionPolicy
) -> AsyncIterator[tuple[Any, Any, str]]:
    """An ``UploadTranscriber`` behind a redaction sink with ``policy``, a real store and
    pool, and a call "up1" whose recording is ``path``: (runner, database, tenant id)."""
    from sipscribe.asr.pool import AsrPool
    from sipscribe.config import load_settings
    from sipscribe.pipeline.endpointer import EndpointerConfig
    from sipscribe.store import calls as calls_q
    from sipscribe.store import tenants as tenant_store
    from sipscribe.store.db import init_db
    from sipscribe.store.sink import StoreSink
    from sipscribe.uploads import UploadTranscriber

    database = await init_db(load_settings(data_dir=tmp_path / "data"))
    pool = AsrPool(engine)
    await pool.start()
    raw, public = EventBus(), EventBus()
    sink = RedactingSink(public, policy=policy)
    store = StoreSink(database, default_tenant_id="none")
    tasks = [
        asyncio.create_task(sink.run(raw.subscribe("redaction"))),
        asyncio.create_task(store.run(public.subscribe("store"))),
    ]
    try:
        async with database.session() as s:
            tenant = await tenant_store.get_or_create_tenant(s, name="default")
            await calls_q.create_call(
                s, tenant_id=tenant.id, call_id="up1", source="upload", recording_path=str(path)
            )
        runner = UploadTranscriber(
            pool=pool,
            bus=raw,
            public_bus=public,
            store=store,
            endpointer=EndpointerConfig(),
            store_timeout_s=60,
        )
        yield runner, database, tenant.id
    finally:
        await raw.close()
        await tasks[0]
        await public.close()
        await tasks[1]
        await pool.stop()
        await database.dispose()


@pytest.mark.integration
async def test_unredacted_upload_keeps_the_original(  # type: ignore[no-untyped-def]
    tmp_path: Path, engine, conversation: list[np.ndarray]
) -> None:
    """The API offers no output mode for uploads (the default, "redacted", applies); the
    runner follows the sink's policy, as live recordings do: no masking, no rewrite."""
    from sipscribe.store import calls as calls_q
    from sipscribe.store.utterances import list_utterances

    path = write_audio(tmp_path / "call.flac", conversation, rate=16000, kind="flac")
    digest = hashlib.sha256(path.read_bytes()).digest()
    async with runner_on(tmp_path, engine, path, RedactionPolicy(output="unredacted")) as (
        runner,
        database,
        tenant_id,
    ):
        await asyncio.wait_for(runner.transcribe_call("up1", tenant_id, path, None), 60)
        async with database.session() as s:
            rows = await list_utterances(s, call_id="up1", tenant_id=tenant_id)
            call = await calls_q.get_call(s, call_id="up1", tenant_id=tenant_id)
    caller = " ".join(u.text for u in rows if u.channel == 1)
    if not any(c.isdigit() for c in caller):
        pytest.skip(f"the card was not recognised as digits: {caller!r}")
    assert all(u.redacted_text is None for u in rows), "nothing was masked"
    assert call is not None and call.recording_path == str(path)
    assert hashlib.sha256(path.read_bytes()).digest() == digest, "the upload is kept as it came"


async def test_a_recording_that_cannot_be_redacted_is_deleted(  # type: ignore[no-untyped-def]
    tmp_path: Path, engine
) -> None:
    """Keeping audio the transcript masks is worse than losing the recording."""
    from sipscribe.store import calls as calls_q

    path = tmp_path / "call.mp3"
    path.write_bytes(b"ID3" + b"\x00" * 64)  # not decodable: the rewrite fails
    async with runner_on(tmp_path, engine, path, RedactionPolicy()) as (runner, db, tenant_id):
        await runner._redact_recording("up1", tenant_id, path, {1: [CARD]})
        async with db.session() as s:
            call = await calls_q.get_call(s, call_id="up1", tenant_id=tenant_id)
    assert not path.exists()
    assert call is not None and call.recording_path is None
