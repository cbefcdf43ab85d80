"""Uploading a recording: the real runner, the shared ASR pool, redaction and the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sipscribe.asr.evaluation import word_error_rate
from sipscribe.media.audiofile import write_audio
from sipscribe.media.resample import resample
from sipscribe.testing.corpus import build_conversation, telephony
from tests.integration.sipp import api, start_server

pytestmark = pytest.mark.integration


async def wait_state(server, call_id: str, want: set[str], timeout: float = 120) -> dict:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        r = await api(server, "GET", f"/api/v2/calls/{call_id}")
        state = r.json()["data"].get("transcription_state")
        if state in want:
            return r.json()["data"]
        await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} never reached {want}")


async def test_stereo_upload_is_transcribed(tmp_path: Path, engine, corpus) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine)
    try:
        tracks, placed = build_conversation(corpus[:6], gap_s=1.0)
        path = write_audio(
            tmp_path / "call.wav",
            [resample(telephony(t), 16000, 8000) for t in tracks],
            rate=8000,
            kind="wav-ulaw",
        )
        with path.open("rb") as fh:
            r = await api(
                server,
                "POST",
                "/api/v2/calls",
                files={"file": ("call.wav", fh, "audio/wav")},
                data={"roles": "agent,customer", "external_id": "crm-42"},
            )
        assert r.status_code == 201, r.json()
        call_id = r.json()["data"]["id"]
        call = await wait_state(server, call_id, {"speech_stored", "speech_recognition_failed"})
        assert call["transcription_state"] == "speech_stored", call
        r = await api(server, "GET", f"/api/v2/calls/{call_id}/transcription")
        payload = r.json()["data"]["payload"]
        refs, hyps = [], []
        for p in placed:
            hits = [u for u in payload if u["start"] < p.end_s and u["end"] > p.start_s]
            assert {u["channel"] for u in hits} == {p.channel}
            assert {u["role"] for u in hits} == {("agent", "customer")[p.channel]}
            refs.append(p.text)
            hyps.append(" ".join(u["text"] for u in hits))
        assert word_error_rate(refs, hyps) <= 0.15
        r = await api(
            server, "GET", "/conversation/v1/conversation/messages", params={"externalId": "crm-42"}
        )
        assert len(r.json()["messages"]) == len(payload)
    finally:
        await server.stop(drain_timeout=1)


async def test_corrupt_upload_fails_with_a_reason(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine)
    try:
        r = await api(
            server,
            "POST",
            "/api/v2/calls",
            files={"file": ("call.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 50, "audio/wav")},
        )
        assert r.status_code == 201
        call_id = r.json()["data"]["id"]
        call = await wait_state(server, call_id, {"speech_recognition_failed", "speech_stored"})
        assert call["transcription_state"] == "speech_recognition_failed"
        r = await api(server, "GET", f"/api/v2/calls/{call_id}/transcription")
        data = r.json()["data"]
        assert data["speech_state"] == "speech_recognition_failed" and data["payload"] == []
        assert "not a readable audio file" in data["error"]
    finally:
        await server.stop(drain_timeout=1)
