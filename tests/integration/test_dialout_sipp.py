"""Dial-out against real sipp far ends: answer, digest auth, busy, no answer, BYE mid-call.

Each test runs the whole server (``start_server``) and a sipp UAS on loopback, drives the
``endpoint:connect`` API and checks both sides: our connection state and transcript, and
what sipp saw (its exit status, its message log, the RTP and DTMF we sent it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest

from sipscribe.media.codecs.g711 import encode_ulaw
from sipscribe.media.resample import resample
from tests.integration.sipp import api, start_server, wait_connection
from tests.integration.sipp_uas import SippUas, requires_sipp

pytestmark = [pytest.mark.integration, requires_sipp]

CONNECT = "/v1/endpoint:connect"


def _speech_ulaw(librivox: list[Any], seconds: float = 12.0) -> tuple[bytes, str]:
    """Real speech as raw PCMU for sipp to loop, and its reference text."""
    parts, texts, total = [], [], 0.0
    for rec in librivox:
        parts += [rec.audio, np.zeros(8000, dtype=np.float32)]
        texts.append(rec.text)
        total += rec.duration_s + 0.5
        if total >= seconds:
            break
    audio = resample(np.concatenate(parts), 16000, 8000)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    return encode_ulaw(pcm), " ".join(texts)


async def _start(server: Any, uas: SippUas, **extra: Any) -> dict[str, Any]:
    endpoint = {"type": "sip", "uri": uas_uri(uas), **extra.pop("endpoint", {})}
    r = await api(
        server, "POST", CONNECT, json={"operation": "start", "endpoint": endpoint, **extra}
    )
    assert r.status_code == 201, r.text
    return r.json()


def uas_uri(uas: SippUas) -> str:
    transport = ";transport=tcp" if uas.transport == "t1" else ""
    return f"sip:bob@127.0.0.1:{uas.port}{transport}"


async def _utterances(server: Any, call_id: str) -> list[dict[str, Any]]:
    await server.store_sink.wait_ended(call_id, 120)
    r = await api(server, "GET", f"/api/v2/calls/{call_id}/transcription")
    assert r.status_code == 200, r.text
    return r.json()["data"]["payload"]


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_answered_call_is_transcribed_and_gets_our_dtmf(
    tmp_path: Path, engine: Any, librivox: list[Any], transport: str
) -> None:
    audio, reference = _speech_ulaw(librivox)
    server = await start_server(tmp_path, engine, dialout_dtmf_delay_ms=300)
    uas = SippUas("uas_answer", transport=transport, audio=audio, timeout=90)
    await uas.start()
    try:
        started = await _start(server, uas, dtmf="12#9")
        assert started["eventUrl"].endswith(f"/v1/event/{started['connectionId']}")
        assert started["resultWebSocketUrl"].startswith("ws://")
        cid = started["connectionId"]
        up = await wait_connection(server, cid, {"connected"})
        assert up["sipStatus"] == 200 and up["codec"] == "PCMU"
        await asyncio.sleep(len(audio) / 8000 + 2)  # let sipp play its audio once
        r = await api(server, "POST", CONNECT, json={"operation": "stop", "connectionId": cid})
        assert r.status_code == 200, r.text
        ended = r.json()
        assert ended["state"] == "ended" and ended["reason"] == "completed"
        assert ended["dtmfSent"] == "12#9"
        assert await uas.wait(30) == 0, uas.sipp.report()
        assert uas.dtmf_digits() == "12#9"  # as RFC 4733 events, in order
        # Silence was sent at the packet rate between and around the digits.
        audio_packets = [p for p in uas.rtp if p.payload_type == 0]
        assert len(audio_packets) >= 50
        utterances = await _utterances(server, started["conversationId"])
        hyp = " ".join(u["text"] for u in utterances).lower()
        heard = jiwer.wer(reference.lower(), hyp)
        # sipp loops the audio, so we may hear more than the reference: compare the start.
        first = " ".join(hyp.split()[: len(reference.split())])
        assert jiwer.wer(reference.lower(), first) <= 0.25, (heard, hyp)
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


@pytest.mark.parametrize(
    ("scenario", "header"),
    [("uas_auth", "Authorization"), ("uas_proxy_auth", "Proxy-Authorization")],
)
async def test_digest_auth_then_connected(
    tmp_path: Path, engine: Any, scenario: str, header: str
) -> None:
    server = await start_server(tmp_path, engine)
    uas = SippUas(scenario, credentials=("alice", "s3cret"), timeout=60)
    await uas.start()
    try:
        started = await _start(
            server, uas, endpoint={"auth": {"username": "alice", "password": "s3cret"}}
        )
        cid = started["connectionId"]
        await wait_connection(server, cid, {"connected"})
        assert uas.digest_valid("s3cret")
        invites = [m for m in uas.sipp.received("INVITE")]
        assert len(invites) == 2 and f"\n{header}: Digest " in invites[1].replace("\r", "")
        r = await api(server, "POST", CONNECT, json={"operation": "stop", "connectionId": cid})
        assert r.json()["reason"] == "completed"
        assert await uas.wait(30) == 0, uas.sipp.report()
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


async def test_wrong_password_ends_auth_failed_or_rejected(tmp_path: Path, engine: Any) -> None:
    server = await start_server(tmp_path, engine)
    uas = SippUas("uas_auth", credentials=("alice", "s3cret"), timeout=60)
    await uas.start()
    try:
        started = await _start(
            server, uas, endpoint={"auth": {"username": "alice", "password": "wrong"}}
        )
        ended = await wait_connection(server, started["connectionId"], {"ended"})
        assert ended["sipStatus"] in (401, 403)
        assert ended["reason"] == ("auth_failed" if ended["sipStatus"] == 401 else "rejected")
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


async def test_busy(tmp_path: Path, engine: Any) -> None:
    server = await start_server(tmp_path, engine)
    uas = SippUas("uas_busy", timeout=30)
    await uas.start()
    try:
        started = await _start(server, uas)
        ended = await wait_connection(server, started["connectionId"], {"ended"})
        assert (ended["sipStatus"], ended["reason"]) == (486, "busy")
        assert await uas.wait(15) == 0, uas.sipp.report()
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


async def test_no_answer_is_cancelled_after_the_ring_timeout(tmp_path: Path, engine: Any) -> None:
    server = await start_server(tmp_path, engine, dialout_ring_timeout_s=2.0)
    uas = SippUas("uas_noanswer", recv_timeout=20, timeout=40)
    await uas.start()
    try:
        started = await _start(server, uas)
        cid = started["connectionId"]
        ringing = await wait_connection(server, cid, {"ringing"})
        assert ringing["sipStatus"] == 180
        ended = await wait_connection(server, cid, {"ended"}, timeout=15)
        assert (ended["sipStatus"], ended["reason"]) == (487, "no_answer")
        assert await uas.wait(15) == 0, uas.sipp.report()
        assert uas.sipp.received("CANCEL"), "sipp never saw our CANCEL"
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


async def test_far_end_bye_mid_call(tmp_path: Path, engine: Any) -> None:
    server = await start_server(tmp_path, engine)
    uas = SippUas("uas_bye_midcall", call_ms=2500, timeout=40)
    await uas.start()
    try:
        started = await _start(server, uas)
        cid = started["connectionId"]
        await wait_connection(server, cid, {"connected"})
        ended = await wait_connection(server, cid, {"ended"}, timeout=20)
        assert ended["reason"] == "completed" and "far end" in (ended["detail"] or "")
        assert await uas.wait(15) == 0, uas.sipp.report()
        # The call record keeps the outcome after the connection is gone from memory.
        server.dialer._ended.clear()
        r = await api(server, "GET", f"{CONNECT}/{cid}")
        assert r.status_code == 200 and r.json()["reason"] == "completed"
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


async def test_api_errors(tmp_path: Path, engine: Any) -> None:
    server = await start_server(tmp_path, engine, dialout_max_per_tenant=1)
    try:

        async def post(body: Any) -> Any:
            return await api(server, "POST", CONNECT, json=body)

        r = await post({"operation": "start"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "endpoint"
        r = await post({"operation": "start", "endpoint": {"type": "sip", "uri": "http://x.y"}})
        assert r.status_code == 400 and r.json()["error"]["field"] == "endpoint.uri"
        bad_rate = {
            "type": "sip",
            "uri": "sip:a@127.0.0.1",
            "audioConfig": {"encoding": "PCMU", "sampleRate": 16000},
        }
        r = await post({"operation": "start", "endpoint": bad_rate})
        assert r.status_code == 400
        assert r.json()["error"]["field"] == "endpoint.audioConfig.sampleRate"
        r = await post(
            {
                "operation": "start",
                "endpoint": {"type": "sip", "uri": "sip:a@127.0.0.1"},
                "dtmf": "12x",
            }
        )
        assert r.status_code == 400 and r.json()["error"]["field"] == "dtmf"
        r = await post(
            {
                "operation": "start",
                "endpoint": {"type": "sip", "uri": "sip:a@127.0.0.1"},
                "actions": [
                    {
                        "invokeOn": "stop",
                        "name": "sendSummaryEmail",
                        "parameters": {"emails": ["not an address"]},
                    }
                ],
            }
        )
        assert r.status_code == 400
        assert r.json()["error"]["field"] == "actions.0.parameters.emails"
        r = await post({"operation": "stop", "connectionId": "nope"})
        assert r.status_code == 404
        r = await api(server, "GET", f"{CONNECT}/nope")
        assert r.status_code == 404
        # 401 without a key
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as c:
            assert (await c.post(CONNECT, json={"operation": "stop"})).status_code == 401
        # The tenant's concurrent-connection limit: a far end that never answers holds one.
        silent = {"type": "sip", "uri": "sip:nobody@127.0.0.1:9"}  # discard port: no answer
        first = await post({"operation": "start", "endpoint": silent})
        assert first.status_code == 201, first.text
        second = await post({"operation": "start", "endpoint": silent})
        assert second.status_code == 429, second.text
        # Scopes and tenants: connect.write is needed; another tenant sees no connection.
        from sipscribe.store import keys as keys_q

        async with server.services.database.session() as s:
            _, reader = await keys_q.create_key(
                s, tenant_name="default", scopes=["calls.read"], name="r"
            )
            _, other = await keys_q.create_key(s, tenant_name="globex", scopes=["admin"], name="o")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as c:
            r = await c.post(
                CONNECT,
                json={"operation": "start", "endpoint": silent},
                headers={"Authorization": f"Bearer {reader}"},
            )
            assert r.status_code == 403 and "connect.write" in r.json()["error"]["message"]
            first_id = first.json()["connectionId"]
            for method, path, body in [
                ("GET", f"{CONNECT}/{first_id}", None),
                ("POST", CONNECT, {"operation": "stop", "connectionId": first_id}),
                (
                    "POST",
                    f"/v1/event/{first_id}",
                    {"type": "started_speaking", "user": {"id": "x"}},
                ),
            ]:
                r = await c.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {other}"}
                )
                assert r.status_code == 404, (path, r.text)
        r = await api(
            server, "POST", f"/v1/event/{first_id}", json={"type": "shouting", "user": {"id": "x"}}
        )
        assert r.status_code == 400 and r.json()["error"]["field"] == "type"
        r = await post({"operation": "stop", "connectionId": first.json()["connectionId"]})
        assert r.status_code == 200 and r.json()["state"] == "ended"
        assert r.json()["reason"] in ("cancelled", "timeout")
    finally:
        await server.stop(drain_timeout=5)


async def test_far_end_hold_reinvite_then_bye(tmp_path: Path, engine: Any) -> None:
    """The far end re-INVITEs with a=sendonly: we answer recvonly with only the payload types
    it offered, keep the call, stop sending media while held, and end on its BYE."""
    server = await start_server(tmp_path, engine)
    uas = SippUas("uas_hold_then_bye", call_ms=1500, timeout=40)
    await uas.start()
    try:
        started = await _start(server, uas)
        cid = started["connectionId"]
        await wait_connection(server, cid, {"connected"})
        ended = await wait_connection(server, cid, {"ended"}, timeout=20)
        assert ended["reason"] == "completed"
        assert await uas.wait(15) == 0, uas.sipp.report()
        answers = [m for m in uas.sipp.received("SIP/2.0 200") if "a=recvonly" in m]
        assert answers, uas.sipp.messages
        # We sent silence while connected (1.5 s), then nothing while held (1.5 s more).
        from datetime import datetime

        arrivals = [p.arrival for p in uas.rtp]
        sent_for = arrivals[-1] - arrivals[0]
        lasted = (
            datetime.fromisoformat(ended["endedAt"]) - datetime.fromisoformat(ended["connectedAt"])
        ).total_seconds()
        assert len(arrivals) > 40 and 1.0 < sent_for < 2.3, (len(arrivals), sent_for)
        assert lasted > sent_for + 1.0, (lasted, sent_for)
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


async def test_early_media_is_transcribed_before_the_answer(
    tmp_path: Path, engine: Any, librivox: list[Any]
) -> None:
    """A 183 with SDP (an IVR prompt before answer): we listen from the 183 on."""
    audio, reference = _speech_ulaw(librivox, seconds=6.0)
    early_ms = int(len(audio) / 8) + 1500
    server = await start_server(tmp_path, engine)
    uas = SippUas("uas_early_media", audio=audio, call_ms=early_ms, timeout=60)
    await uas.start()
    try:
        started = await _start(server, uas)
        cid = started["connectionId"]
        ringing = await wait_connection(server, cid, {"ringing"})
        assert ringing["sipStatus"] == 183
        await wait_connection(server, cid, {"connected"}, timeout=early_ms / 1000 + 10)
        r = await api(server, "POST", CONNECT, json={"operation": "stop", "connectionId": cid})
        assert r.json()["reason"] == "completed"
        utterances = await _utterances(server, started["conversationId"])
        hyp = " ".join(u["text"] for u in utterances).lower()
        first = " ".join(hyp.split()[: len(reference.split())])
        assert jiwer.wer(reference.lower(), first) <= 0.3, hyp
        # What was said before the answer is in the transcript: it ends before the 200.
        assert utterances[0]["start"] < early_ms / 1000 - 1.0
    finally:
        await uas.stop()
        await server.stop(drain_timeout=5)


async def test_sigterm_drain_hangs_up_and_keeps_what_was_said(
    tmp_path: Path, engine: Any, librivox: list[Any]
) -> None:
    audio, _ = _speech_ulaw(librivox, seconds=5.0)
    server = await start_server(tmp_path, engine)
    uas = SippUas("uas_answer", audio=audio, timeout=60)
    await uas.start()
    stopped = False
    try:
        started = await _start(server, uas)
        cid = started["connectionId"]
        await wait_connection(server, cid, {"connected"})
        await asyncio.sleep(len(audio) / 8000 + 1.0)
        await server.stop(drain_timeout=10)  # what SIGTERM runs
        stopped = True
        conn = server.dialer.get(cid)
        assert conn is not None and conn.reason == "completed"
        assert conn.detail == "server shutdown"
        assert server.store_sink.stored_utterances >= 1
        assert await uas.wait(15) == 0, uas.sipp.report()  # it got our BYE
    finally:
        await uas.stop()
        if not stopped:
            await server.stop(drain_timeout=5)
