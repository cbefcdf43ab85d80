"""Start/stop streaming against a real SIPREC call (sipp) with auto_start off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sipscribe.asr.evaluation import word_error_rate
from sipscribe.testing.corpus import build_conversation
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


async def post(server, path: str, body: dict):  # type: ignore[no-untyped-def]
    return await api(server, "POST", f"/mg-autotranscribe/v1/{path}", json=body)


def code(resp) -> str:  # type: ignore[no-untyped-def]
    return resp.json()["error"]["code"]


async def test_start_stop_streaming(tmp_path: Path, engine, corpus) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine, auto_start=False)
    try:
        # turns: 0 (ch0) 1 (ch1) 2 (ch0) 3 (ch1); transcribe only turns 1 and 2
        turns = [corpus[1], corpus[4], corpus[3], corpus[2]]
        tracks, placed = build_conversation(turns, gap_s=2.0)
        sc = scenario(
            tmp_path,
            "siprec_uac.xml",
            LABEL_A="a",
            LABEL_B="b",
            AOR_A="carol@example.com",
            AOR_B="dave@example.com",
        )
        duration = int(tracks[0].size / 16 + 1500)
        sipp = await run_sipp(tmp_path, sc, server.sip_port, duration_ms=duration)
        answer = await sipp.answer()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sending = asyncio.create_task(send_streams([p for _, p in answer], tracks))  # noqa: RUF006 - awaited below
        call = next(iter(server.recorder.calls.values()))
        guid = call.external_id
        base = {"namespace": "test", "guid": guid}

        # errors before anything started
        r = await post(server, "stop-streaming", base)
        assert r.status_code == 409 and code(r) == "409-201"
        r = await post(server, "start-streaming", {**base, "guid": "nope"})
        assert r.status_code == 400 and code(r) == "400-203"
        r = await post(
            server, "start-streaming", {**base, "siprecParams": {"mediaLineOrder": "SIDEWAYS"}}
        )
        assert r.status_code == 400 and code(r) == "400-201"
        assert "mediaLineOrder" in r.json()["error"]["message"]
        r = await post(server, "start-streaming", {"guid": guid})
        assert code(r) == "400-201" and "namespace" in r.json()["error"]["message"]
        r = await post(
            server,
            "start-streaming",
            {
                **base,
                "autotranscribeParams": {
                    "audioRecordingAllowed": False,
                    "redactionOutput": "unredacted",
                },
            },
        )
        assert r.status_code == 400 and code(r) == "400-202"

        async def at(seconds: float) -> None:
            await asyncio.sleep(max(0.0, t0 + seconds - loop.time()))

        await at(placed[1].start_s - 1.0)
        r = await post(
            server,
            "start-streaming",
            {
                **base,
                "customerId": "cust-9",
                "agentId": "agent-7",
                "siprecParams": {"mediaLineOrder": "AGENT_FIRST"},
            },
        )
        assert r.status_code == 200 and r.json()["isOk"] is True
        streams = r.json()["autotranscribeResponse"]
        assert set(streams) == {"agent", "customer"}
        assert streams["agent"]["status"] == {"code": 1000, "description": "OK"}
        r = await post(server, "start-streaming", base)
        assert r.status_code == 409 and code(r) == "409-201"

        await at(placed[2].end_s + 0.15)  # the turn's utterance is still open: stop flushes it
        stopping = asyncio.create_task(post(server, "stop-streaming", base))
        for _ in range(2000):  # until the stop is being applied (it waits for recognition)
            if call.pending == "stop" or stopping.done():
                break
            await asyncio.sleep(0.005)
        concurrent = await post(server, "start-streaming", base)
        stop = await stopping
        assert stop.status_code == 200, stop.json()
        assert concurrent.status_code == 409 and code(concurrent) == "409-202"
        summary = stop.json()["autotranscribeResponse"]
        for role in ("agent", "customer"):
            s = summary[role]["summary"]
            assert s["transcripts"] >= 1
            assert s["audioDurationMs"] >= (placed[2].end_s - 0.5) * 1000
            assert 0 < s["streamingSeconds"] <= s["audioDurationMs"] / 1000
            assert s["totalAudioBytes"] == s["audioDurationMs"] * 16
        await sending
        assert await sipp.wait() == 0, sipp.log()
        r = await post(server, "start-streaming", base)
        assert r.status_code == 409 and code(r) == "409-203"

        _, payload = await wait_transcript(server)
        spans = [(u["start"], u["end"]) for u in payload]
        for p in (placed[0], placed[3]):
            assert not any(s < p.end_s and e > p.start_s for s, e in spans), (p, payload)
        hyps = []
        for p in (placed[1], placed[2]):
            hits = [u for u in payload if u["start"] < p.end_s + 0.5 and u["end"] > p.start_s]
            # AGENT_FIRST: the first m-line (channel 0) is the agent
            assert {u["role"] for u in hits} == {("agent", "customer")[p.channel]}
            hyps.append(" ".join(u["text"] for u in hits))
        assert word_error_rate([placed[1].text, placed[2].text], hyps) <= 0.15

        # the conversation API names each sender by the ids start-streaming gave
        r = await api(
            server, "GET", "/conversation/v1/conversation/messages", params={"externalId": guid}
        )
        assert r.status_code == 200, r.json()
        msgs = r.json()["messages"]
        assert len(msgs) == len(payload)
        for m in msgs:
            want = {"agent": "agent-7", "customer": "cust-9"}[m["from"]["role"]]
            assert m["from"]["externalId"] == want, m
        total = (
            summary["agent"]["summary"]["transcripts"]
            + summary["customer"]["summary"]["transcripts"]
        )
        assert total == len(payload)
    finally:
        await server.stop(drain_timeout=1)


async def test_streaming_needs_scope_and_tenant(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine, auto_start=False)
    try:
        r = await api(
            server,
            "POST",
            "/mg-autotranscribe/v1/start-streaming",
            json={"namespace": "n", "guid": "g"},
            headers={"Authorization": ""},
        )
        assert r.status_code == 401
    finally:
        await server.stop(drain_timeout=1)
