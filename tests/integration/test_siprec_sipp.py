"""SIPREC interop: sipp as the recording client, real RTP, real ASR, the HTTP API."""

from __future__ import annotations

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
AGENT_PATTERN = r"^sip:\d{4}@pbx$"


def score(payload: list[dict], placed, role_of_channel: dict[int, str]) -> float:  # type: ignore[no-untyped-def]
    refs, hyps = [], []
    for p in placed:
        hits = [u for u in payload if u["start"] < p.end_s + 0.5 and u["end"] > p.start_s - 0.5]
        assert hits, f"nothing recognised for {p.text!r}"
        assert {u["role"] for u in hits} == {role_of_channel[p.channel]}, (p, hits)
        refs.append(p.text)
        hyps.append(" ".join(u["text"] for u in hits))
    return word_error_rate(refs, hyps)


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_full_call_labels_reversed(tmp_path: Path, engine, corpus, transport: str) -> None:  # type: ignore[no-untyped-def]
    """Labels 1 then 0 (as OpenSIPS/rtpengine offer them); roles from AOR patterns."""
    server = await start_server(tmp_path, engine, agent_aor_patterns=[AGENT_PATTERN])
    try:
        tracks, placed = build_conversation(corpus[:4], gap_s=1.0)
        sc = scenario(
            tmp_path,
            "siprec_uac.xml",
            LABEL_A="1",
            LABEL_B="0",
            AOR_A="alice@example.com",
            AOR_B="1001@pbx",
        )
        duration = int(tracks[0].size / 16 + 1500)
        sipp = await run_sipp(
            tmp_path, sc, server.sip_port, transport=transport, duration_ms=duration
        )
        answer = await sipp.answer()
        assert [label for label, _ in answer] == ["1", "0"], "labels kept, in offer order"
        await send_streams([port for _, port in answer], tracks)
        assert await sipp.wait() == 0, sipp.log()
        call, payload = await wait_transcript(server)
        # party A (label 1, first m-line) is the customer; B (1001@pbx) the agent
        wer = score(payload, placed, {0: "customer", 1: "agent"})
        assert wer <= 0.15, (wer, payload)
        assert call["source"] == "siprec"
        decisions = call["role_decisions"][0]
        assert decisions["method"] != "mline_fallback"
        assert "1001@pbx" in str(decisions)
    finally:
        await server.stop(drain_timeout=1)


async def test_options_ping(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine)
    try:
        sipp = await run_sipp(tmp_path, scenario(tmp_path, "options.xml"), server.sip_port)
        assert await sipp.wait(30) == 0, sipp.log()
        assert "Allow: INVITE" in sipp.messages.read_text()
    finally:
        await server.stop(drain_timeout=1)


async def test_non_siprec_invite_is_refused_with_a_warning(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine)
    try:
        sipp = await run_sipp(tmp_path, scenario(tmp_path, "plain_invite.xml"), server.sip_port)
        assert await sipp.wait(30) == 0, sipp.log()
        log = sipp.messages.read_text()
        assert "SIP/2.0 403" in log and "not a SIPREC INVITE" in log
        calls = (await api(server, "GET", "/api/v2/calls")).json()["data"]
        assert (calls["items"] if isinstance(calls, dict) else calls) == []
    finally:
        await server.stop(drain_timeout=1)


PARTIES = {"LABEL_A": "0", "LABEL_B": "1", "AOR_A": "alice@example.com", "AOR_B": "1001@pbx"}


async def test_hold_and_resume_by_reinvite(tmp_path: Path, engine, corpus) -> None:  # type: ignore[no-untyped-def]
    """Audio sent while the streams are on hold (a=inactive) is not transcribed."""
    from tests.integration.sipp import compose

    server = await start_server(tmp_path, engine, agent_aor_patterns=[AGENT_PATTERN])
    try:
        tracks, placed = build_conversation(corpus[:4], gap_s=2.0)
        hold_at = int((placed[0].end_s + 1.0) * 1000)  # middle of the pause after turn 1
        resume_at = int((placed[2].end_s + 1.0) * 1000)  # middle of the pause after turn 3
        end_at = int(tracks[0].size / 16) + 1500
        sc = compose(
            tmp_path,
            "hold",
            [
                ("invite", {}),
                hold_at,
                ("reinvite_sdp", {"CSEQ": "2", "DIRECTION": "inactive"}),
                resume_at - hold_at,
                ("reinvite_sdp", {"CSEQ": "3", "DIRECTION": "sendonly"}),
                end_at - resume_at,
                ("bye", {"CSEQ": "4"}),
            ],
            **PARTIES,
        )
        sipp = await run_sipp(tmp_path, sc, server.sip_port)
        answer = await sipp.answer()
        await send_streams([port for _, port in answer], tracks)
        assert await sipp.wait() == 0, sipp.log()
        _, payload = await wait_transcript(server)
        spans = [(u["start"], u["end"]) for u in payload]
        for held in (placed[1], placed[2]):
            assert not any(s < held.end_s and e > held.start_s for s, e in spans), (held, payload)
        for live in (placed[0], placed[3]):
            assert any(s < live.end_s and e > live.start_s for s, e in spans), (live, payload)
        wer = score(
            [
                u
                for u in payload
                if u["start"] < placed[0].end_s + 1 or u["start"] > placed[3].start_s - 1
            ],
            [placed[0], placed[3]],
            {0: "customer", 1: "agent"},
        )
        assert wer <= 0.15
    finally:
        await server.stop(drain_timeout=1)


async def test_partial_metadata_transfer(tmp_path: Path, engine, corpus) -> None:  # type: ignore[no-untyped-def]
    """A partial-metadata re-INVITE: the agent leg is transferred to another agent."""
    from tests.integration.sipp import compose

    server = await start_server(tmp_path, engine, agent_aor_patterns=[AGENT_PATTERN])
    try:
        tracks, placed = build_conversation(corpus[:4], gap_s=1.5)
        update_at = int((placed[1].end_s + 0.7) * 1000)
        end_at = int(tracks[0].size / 16) + 1500
        sc = compose(
            tmp_path,
            "partial",
            [
                ("invite", {}),
                update_at,
                ("reinvite_partial", {"CSEQ": "2", "AOR_C": "2002@pbx"}),
                end_at - update_at,
                ("bye", {"CSEQ": "3"}),
            ],
            **PARTIES,
        )
        sipp = await run_sipp(tmp_path, sc, server.sip_port)
        answer = await sipp.answer()
        await send_streams([port for _, port in answer], tracks)
        assert await sipp.wait() == 0, sipp.log()
        call, payload = await wait_transcript(server)
        assert score(payload, placed, {0: "customer", 1: "agent"}) <= 0.15
        history = call["role_decisions"]
        assert len(history) == 2, "the transfer re-decided the roles"
        assert "2002@pbx" in str(history[1]) and "2002@pbx" not in str(history[0])
    finally:
        await server.stop(drain_timeout=1)


async def test_cancel_before_answer(tmp_path: Path, engine) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(tmp_path, engine)
    try:
        sc = scenario(tmp_path, "siprec_cancel.xml", **PARTIES)
        sipp = await run_sipp(tmp_path, sc, server.sip_port)
        assert await sipp.wait(30) == 0, sipp.log()
        assert server.recorder.calls == {}
        assert server.recorder.allocator.in_use == 0, "ports bound for the call are released"
        calls = (await api(server, "GET", "/api/v2/calls")).json()["data"]
        assert (calls["items"] if isinstance(calls, dict) else calls) == []
    finally:
        await server.stop(drain_timeout=1)
