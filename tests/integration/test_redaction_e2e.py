"""A caller speaks a card number on a live SIPREC call: nothing downstream contains it.

Checked everywhere text leaves the pipeline: database rows, real-time webhook bodies,
the completion bundle (JSON and vCon), the live WebSocket, the batch export and the
stored recording (re-transcribed: the spoken digits are silenced).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sipscribe.media.audiofile import read_channels
from sipscribe.testing.corpus import Recording, build_conversation, trim_silence
from tests.delivery.receiver import ReceiverApp, Served
from tests.integration.sipp import (
    api,
    requires_sipp,
    run_sipp,
    scenario,
    send_streams,
    start_server,
    wait_transcript,
)

pytestmark = [pytest.mark.integration, requires_sipp]
ESPEAK = shutil.which("espeak-ng")
# A valid (Luhn) test card with varied digits: a run of "one one one…" sends tiny.en
# into a repetition loop to its token limit (~40 s per utterance), varied digits do not.
CARD_DIGITS = "4539148803436467"
_WORDS = "zero one two three four five six seven eight nine".split()
CARD_SENTENCE = (
    "I would like to pay my bill. My card number is "
    + ", ".join(" ".join(_WORDS[int(d)] for d in CARD_DIGITS[i : i + 4]) for i in (0, 4, 8, 12))
    + "."
)
# Any group of the card as a number of its own (not inside a timestamp) or as words.
LEAK = re.compile(
    "|".join(
        [rf"(?<!\d){CARD_DIGITS[i : i + 4]}(?!\d)" for i in (0, 4, 8, 12)]
        + [r"[ ,.-]+".join(_WORDS[int(d)] for d in CARD_DIGITS[i : i + 4]) for i in (0, 4, 8, 12)]
    ),
    re.I,
)


def synthesize(tmp: Path, text: str) -> np.ndarray:
    wav = tmp / "caller.wav"
    subprocess.run(
        [ESPEAK, "-v", "en-us", "-s", "125", "-g", "4", "-w", str(wav), text],
        check=True,
        timeout=60,
    )
    return trim_silence(read_channels(wav, rate=16000)[0])


def assert_clean(where: str, text: str) -> None:
    match = LEAK.search(text)
    if match is not None:
        context = text[max(0, match.start() - 60) : match.end() + 20]
        raise AssertionError(f"card digits leaked into {where}: ...{context}...")


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng not installed")
async def test_spoken_card_number_never_leaves_the_server(tmp_path: Path, engine, corpus) -> None:  # type: ignore[no-untyped-def]
    import websockets

    caller = Recording("caller", CARD_SENTENCE, synthesize(tmp_path, CARD_SENTENCE))
    # agent, customer (the card), agent, customer (reads it again): the no-leak checks
    # cover both readings; at least one must be recognised as digits to prove anything
    turns = [corpus[4], caller, corpus[1], caller]
    tracks, _ = build_conversation(turns, gap_s=1.5)
    server = await start_server(
        tmp_path, engine, record_audio=True, agent_aor_patterns=[r"^sip:\d{4}@pbx$"]
    )
    receiver = ReceiverApp(secret="")
    served = await Served(receiver).start()
    try:
        from sipscribe.store import tenants as tenant_store

        async with server.services.database.session() as s:
            tenant = await tenant_store.get_or_create_tenant(s, name="default")
            tenant.settings = {**(tenant.settings or {}), "allow_private_webhooks": True}
            await s.commit()
        targets = {}
        for fmt in ("json", "vcon"):
            r = await api(
                server,
                "POST",
                "/api/v2/webhooks",
                json={
                    "url": f"http://127.0.0.1:{served.port}/{fmt}",
                    "events": ["transcript", "call.started", "call.ended", "bundle"],
                    "format": fmt,
                },
            )
            assert r.status_code == 201, r.text
            targets[fmt] = r.json()["data"]
        receiver.secret = targets["json"]["signing_secret"]

        sc = scenario(
            tmp_path,
            "siprec_uac.xml",
            LABEL_A="0",
            LABEL_B="1",
            AOR_A="1001@pbx",
            AOR_B="caller@example.com",
        )
        sipp = await run_sipp(
            tmp_path, sc, server.sip_port, duration_ms=int(tracks[0].size / 16 + 1500)
        )
        answer = await sipp.answer()
        call = next(iter(server.recorder.calls.values()))
        ws_url = f"ws://127.0.0.1:{server.http_port}/v1/conversations/{call.call_id}/stream"
        live: list[str] = []

        async def watch() -> None:
            async with websockets.connect(
                ws_url, additional_headers={"Authorization": f"Bearer {server.admin_key}"}
            ) as ws:
                async for message in ws:
                    live.append(str(message))
                    if json.loads(message).get("type") == "call.ended":
                        return

        watcher = asyncio.create_task(watch())
        await send_streams([p for _, p in answer], tracks)
        assert await sipp.wait() == 0, sipp.log()
        _, payload = await wait_transcript(server)
        await asyncio.wait_for(watcher, 60)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline and not all(
            any(r.json.get("type") == "bundle" or "vcon" in r.json for r in receiver.hooks(f"/{f}"))
            for f in ("json", "vcon")
        ):
            await asyncio.sleep(0.2)

        # the card was spoken, recognised and masked (the test is not vacuous)
        customer = " ".join(u["text"] for u in payload if u["role"] == "customer")
        if "#" not in customer:  # recognition of the synthetic voice failed: nothing to prove
            pytest.skip(f"the card was not recognised as digits this time: {customer!r}")
        assert_clean("the transcript API", json.dumps(payload))

        db = sqlite3.connect(tmp_path / "data" / "sipscribe.db")
        rows = db.execute(
            "select text, coalesce(redacted_text, ''), coalesce(words, '') from utterances"
        ).fetchall()
        assert rows
        assert_clean("database rows", json.dumps(rows))

        json_hooks = receiver.hooks("/json")
        vcon_hooks = receiver.hooks("/vcon")
        transcripts = [r.json for r in json_hooks if r.json.get("type") == "transcript"]
        # every utterance arrived, once, in order, in the media-gateway form
        assert [t["sequence"] for t in transcripts] == list(range(1, len(payload) + 1))
        assert {t["callId"] for t in transcripts} == {call.call_id}
        assert all(t["autotranscribeResponse"]["message"] == "transcript" for t in transcripts)
        assert all(r.signature_ok for r in json_hooks), "webhooks are signed"
        for r in json_hooks + vcon_hooks:
            assert_clean(f"webhook {r.path}", r.body.decode())
        assert any("vcon" in r.json for r in vcon_hooks), "a vCon bundle arrived"

        assert live, "the WebSocket saw the call"
        assert_clean("the live WebSocket", "\n".join(live))

        r = await api(
            server,
            "GET",
            "/api/v2/exports/utterances",
            params={
                "from": "2000-01-01T00:00:00Z",
                "to": "2100-01-01T00:00:00Z",
                "format": "jsonl",
            },
        )
        assert r.status_code == 200 and r.text.strip()
        assert_clean("the export", r.text)

        recordings = sorted((tmp_path / "data" / "recordings").rglob("*.wav"))
        assert len(recordings) == 2
        # every masked word is silent in the stored recording of its stream
        masked = 0
        for stream_id, words_json in db.execute("select stream_id, words from utterances"):
            wav = next(p for p in recordings if p.name.endswith(f"_{stream_id.split(':')[-1]}.wav"))
            audio = read_channels(wav, rate=8000)[0]
            for w in json.loads(words_json or "[]"):
                if "#" in w["word"]:
                    masked += 1
                    a, b = w["start_ms"] * 8, w["end_ms"] * 8
                    assert np.max(np.abs(audio[a:b]), initial=0.0) < 1e-3, (wav.name, w)
        assert masked, "some words were masked"
    finally:
        await server.stop(drain_timeout=1)
        served.server.should_exit = True
        if served.task is not None:
            await served.task
