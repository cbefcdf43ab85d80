"""Drive sipp (Debian sip-tester) as a real SIPREC client against a running Server."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from sipscribe.app import Server
from sipscribe.config import load_settings
from sipscribe.testing.rtp import Impairments, encode_frames, packetize, schedule, send_rtp

SIPP = shutil.which("sipp")
DATA = Path(__file__).resolve().parent.parent / "data" / "sipp"

requires_sipp = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (apt-get install sip-tester)"
)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(tmp: Path, engine: Any, **overrides: Any) -> Server:
    base = 43000 + (free_port() % 200) * 100
    values = {
        "data_dir": tmp / "data",
        "http_port": 0,
        "sip_port": 0,
        "sip_host": "127.0.0.1",
        "rtp_host": "127.0.0.1",
        "rtp_port_min": base,
        "rtp_port_max": base + 99,
        **overrides,
    }
    settings = load_settings(**values)
    server = Server(settings)
    await server.start(engine=engine)
    return server


def scenario(tmp: Path, name: str, **subs: str) -> Path:
    text = (DATA / name).read_text()
    for key, value in subs.items():
        text = text.replace(key, value)
    out = tmp / name
    out.write_text(text)
    return out


@dataclass
class Sipp:
    proc: asyncio.subprocess.Process
    messages: Path
    errors: Path

    async def wait(self, timeout: float = 180) -> int:
        await asyncio.wait_for(self.proc.wait(), timeout)
        return int(self.proc.returncode or 0)

    def log(self) -> str:
        parts = []
        for p in (self.messages, self.errors):
            if p.exists():
                parts.append(p.read_text(errors="replace")[-6000:])
        return "\n".join(parts)

    async def answer(self, timeout: float = 20) -> list[tuple[str | None, int]]:
        """(label, port) of each m-line of our 200 OK to the INVITE, once sipp has it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.messages.exists():
                found = parse_answer(self.messages.read_text(errors="replace"))
                if found:
                    return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no 200 OK with SDP within {timeout} s\n{self.log()}")


def parse_answer(text: str) -> list[tuple[str | None, int]]:
    m = re.search(
        r"SIP/2\.0 200 OK.*?CSeq: \d+ INVITE.*?\r?\n\r?\n(v=0.*?)(?:\r?\n-{10,}|\Z)", text, re.S
    )
    if not m:
        return []
    out: list[tuple[str | None, int]] = []
    for block in re.split(r"\r?\n(?=m=)", m.group(1))[1:]:
        port = int(block.split()[1])
        label = re.search(r"a=label:(\S+)", block)
        out.append((label.group(1) if label else None, port))
    return out


async def run_sipp(
    tmp: Path,
    scenario_file: Path,
    port: int,
    *,
    transport: str = "u1",
    duration_ms: int = 1000,
    extra: tuple[str, ...] = (),
) -> Sipp:
    assert SIPP is not None
    messages, errors = tmp / f"{scenario_file.stem}.msg", tmp / f"{scenario_file.stem}.err"
    proc = await asyncio.create_subprocess_exec(
        SIPP,
        f"127.0.0.1:{port}",
        "-sf",
        str(scenario_file),
        "-m",
        "1",
        "-d",
        str(duration_ms),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port(socket.SOCK_STREAM if transport == "t1" else socket.SOCK_DGRAM)),
        "-t",
        transport,
        "-trace_msg",
        "-message_file",
        str(messages),
        "-trace_err",
        "-error_file",
        str(errors),
        "-timeout",
        "120s",
        "-timeout_error",
        "-nostdin",
        "-max_recv_loops",
        "1000",
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return Sipp(proc, messages, errors)


async def send_streams(
    targets: list[int], tracks: list[np.ndarray], *, codec: str = "PCMU", loss: float = 0.0
) -> None:
    """One real RTP stream per answered port, sent concurrently at real-time pace."""
    jobs = []
    for i, (port, track) in enumerate(zip(targets, tracks, strict=True)):
        packets = packetize(encode_frames(track, codec), codec, ssrc=0xABC0 + i)
        plan, _ = schedule(packets, Impairments(loss=loss, seed=i + 3))
        jobs.append(send_rtp(plan, ("127.0.0.1", port)))
    await asyncio.gather(*jobs)


async def api(server: Server, method: str, path: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=30,
    ) as client:
        return await client.request(method, path, **kw)


async def wait_transcript(server: Server, timeout: float = 120) -> tuple[dict, list[dict]]:
    """The one call's record and its transcript payload, once the call is stored."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        calls = (await api(server, "GET", "/api/v2/calls")).json()["data"]
        items = calls["items"] if isinstance(calls, dict) else calls
        if items:
            call = items[0]
            r = await api(server, "GET", f"/api/v2/calls/{call['id']}/transcription")
            if r.status_code == 200 and r.json()["data"]["speech_state"] == "speech_stored":
                detail = (await api(server, "GET", f"/api/v2/calls/{call['id']}")).json()["data"]
                return detail, r.json()["data"]["payload"]
        await asyncio.sleep(0.25)
    raise AssertionError("call transcript not stored in time")


async def wait_connection(
    server: Server, connection_id: str, states: set[str] | str, timeout: float = 30
) -> dict[str, Any]:
    """Poll ``GET /v1/endpoint:connect/{id}`` until the dial-out is in one of ``states``."""
    want = {states} if isinstance(states, str) else states
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    body: dict[str, Any] = {}
    while loop.time() < deadline:
        r = await api(server, "GET", f"/v1/endpoint:connect/{connection_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["state"] in want:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"connection {connection_id} never reached {want}: {body}")


def compose(
    tmp: Path, name: str, steps: list[tuple[str, dict[str, str]] | int], **subs: str
) -> Path:
    """A scenario from fragments: ``("invite", {}), 1500 (a pause in ms), ("bye", {...})``."""
    parts = [
        '<?xml version="1.0" encoding="ISO-8859-1" ?>',
        '<!DOCTYPE scenario SYSTEM "sipp.dtd">',
        f'<scenario name="{name}">',
    ]
    for step in steps:
        if isinstance(step, int):
            parts.append(f'  <pause milliseconds="{step}"/>')
            continue
        fragment, local = step
        text = (DATA / "fragments" / f"{fragment}.xml").read_text()
        for key, value in {**subs, **local}.items():
            text = text.replace(key, value)
        parts.append(text)
    parts.append("</scenario>")
    out = tmp / f"{name}.xml"
    out.write_text("\n".join(parts))
    return out
