"""``sipscribe serve`` as users run it: one process, real ports, SIGTERM drains."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest

from sipscribe.testing.corpus import build_conversation
from tests.integration.sipp import free_port, requires_sipp, run_sipp, scenario, send_streams

pytestmark = [pytest.mark.integration, requires_sipp]


async def wait_healthy(port: int, proc: asyncio.subprocess.Process, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient() as client:
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"server exited with {proc.returncode}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server never became healthy")


async def test_serve_drains_on_sigterm(tmp_path: Path, corpus) -> None:  # type: ignore[no-untyped-def]
    http_port, sip_port = free_port(), free_port()
    env = {
        **os.environ,
        "SIPSCRIBE_DATA_DIR": str(tmp_path / "data"),
        "SIPSCRIBE_HTTP_PORT": str(http_port),
        "SIPSCRIBE_SIP_HOST": "127.0.0.1",
        "SIPSCRIBE_SIP_PORT": str(sip_port),
        "SIPSCRIBE_RTP_HOST": "127.0.0.1",
        "SIPSCRIBE_RTP_PORT_MIN": "47000",
        "SIPSCRIBE_RTP_PORT_MAX": "47100",
        "SIPSCRIBE_DRAIN_TIMEOUT_S": "3",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sipscribe",
            "serve",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
        )
        try:
            await wait_healthy(http_port, proc)
            assert proc.stdout is not None
            key = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
            assert key.startswith("ssk_"), "first start prints the admin key alone on stdout"
            headers = {"Authorization": f"Bearer {key}"}

            # a call that is still going when SIGTERM arrives
            tracks, placed = build_conversation(corpus[:2], gap_s=1.0)
            long_call = scenario(
                tmp_path,
                "siprec_uac.xml",
                LABEL_A="0",
                LABEL_B="1",
                AOR_A="a@example.com",
                AOR_B="b@example.com",
            )
            sipp = await run_sipp(tmp_path, long_call, sip_port, duration_ms=60_000)
            answer = await sipp.answer()
            await send_streams([p for _, p in answer], tracks)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as c:
                metrics = (await c.get("/metrics")).text
                assert "sipscribe_active_calls 1.0" in metrics
                await asyncio.sleep(2.5)
                metrics = (await c.get("/metrics")).text
                assert "sipscribe_rtp_packets_total" in metrics
                packets = [
                    ln
                    for ln in metrics.splitlines()
                    if ln.startswith("sipscribe_rtp_packets_total")
                ]
                assert float(packets[0].split()[-1]) > 100
                assert (await c.get("/api/v2/calls", headers=headers)).status_code == 200

            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # while draining, a new recording is refused with 503 and Retry-After
            refused = await run_sipp(
                tmp_path,
                scenario(
                    tmp_path,
                    "siprec_refused.xml",
                    LABEL_A="0",
                    LABEL_B="1",
                    AOR_A="x@example.com",
                    AOR_B="y@example.com",
                ),
                sip_port,
            )
            assert await refused.wait(30) == 0, refused.log()
            assert "Retry-After:" in refused.messages.read_text()
            assert await asyncio.wait_for(proc.wait(), 60) == 0
            # the drained call was ended by us with a BYE that sipp answers ... or times out;
            # either way every utterance recognised before the end is stored
            await asyncio.wait_for(sipp.proc.wait(), 90)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            sipp_proc = locals().get("sipp")
            if sipp_proc is not None and sipp_proc.proc.returncode is None:
                sipp_proc.proc.kill()
    db = sqlite3.connect(tmp_path / "data" / "sipscribe.db")
    rows = db.execute("select text, role from utterances order by sequence").fetchall()
    state = db.execute("select state, transcription_state from calls").fetchall()
    assert len(rows) >= 2, rows
    assert state == [("completed", "speech_stored")]
    lines = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.startswith("{")]
    assert any(ln.get("call_id") and "recording call" in ln["message"] for ln in lines)
    assert any("shutting down" in ln["message"] for ln in lines)
    # a second start on the same data directory prints no new key
    proc2 = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sipscribe",
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_healthy(http_port, proc2)
        proc2.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc2.communicate(), 30)
        assert out == b"" and proc2.returncode == 0
    finally:
        if proc2.returncode is None:
            proc2.kill()
