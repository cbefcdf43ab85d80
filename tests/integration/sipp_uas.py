"""sipp as the far end of a dial-out: a UAS run in the background on loopback, and what it saw.

The scenarios are ``tests/data/sipp/uas_*.xml``. :class:`SippUas` copies one into a work
directory together with the audio sipp loops back (``uas_audio.ulaw``, raw PCMU), starts sipp
listening on 127.0.0.1 and keeps sipp's own logs there: the SIP message log (``-trace_msg``),
errors (``-trace_err``), ``<log>`` actions (``-trace_logs``) and the final screen. sipp's exit
status says whether the scenario ran to its end (0) or the call failed (1).

sipp 3.6 cannot say what RTP it received: its RTP echo (``-rtp_echo``) only counts packets and
plays them back to the caller, and nothing decodes RFC 4733 events. So, with ``record_rtp``, the
answer's ``m=`` port is swapped for a socket of ours that keeps every packet the caller sends
(:attr:`SippUas.rtp`, :meth:`SippUas.dtmf_digits`); sipp still streams its audio to the caller,
from its own port (asymmetric RTP, as RFC 3550 allows).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
import shutil
import socket
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SIPP = shutil.which("sipp")
DATA = Path(__file__).resolve().parent.parent / "data" / "sipp"
HOST = "127.0.0.1"
AUDIO_FILE = "uas_audio.ulaw"
DTMF_PT = 101

requires_sipp = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (apt-get install sip-tester)"
)

# sipp's exit status (sipp(1)): 0 every call passed, 1 a call failed, 97 stopped by an internal
# command, 99 ended without a call, 255 fatal error (bad scenario, port in use).
EXIT_OK, EXIT_FAILED_CALL, EXIT_NO_CALL, EXIT_FATAL = 0, 1, 99, 255

_DTMF_EVENTS = "0123456789*#ABCD"


def free_port(kind: int = socket.SOCK_DGRAM, span: int = 1) -> int:
    """A loopback port, free with the ``span - 1`` ports above it (sipp's RTP takes 2 or 4)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((HOST, 0))
            base = int(s.getsockname()[1])
        if base + span > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base + 1, base + span):
                    probe = stack.enter_context(socket.socket(socket.AF_INET, kind))
                    probe.bind((HOST, port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port span on loopback")


def _ulaw(sample: int) -> int:
    """G.711 mu-law of a 16-bit sample: our own, not the code under test's."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def pcmu_tone(seconds: float = 1.0, hz: float = 400.0, level: float = 0.25) -> bytes:
    """Raw PCMU of a sine (8 kHz), what sipp loops by default: audible, easy to recognise."""
    n = int(seconds * 8000)
    return bytes(
        _ulaw(round(level * 32767 * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )


@dataclass(frozen=True)
class RtpPacket:
    """One datagram the caller sent to the far end, parsed as RTP (RFC 3550 5.1)."""

    arrival: float
    source: tuple[str, int]
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes

    @classmethod
    def parse(cls, data: bytes, source: tuple[str, int], arrival: float) -> RtpPacket | None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return None
        start = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # header extension
            if len(data) < start + 4:
                return None
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        end = len(data) - (data[-1] if data[0] & 0x20 and data[-1] else 0)
        if start > end:
            return None
        seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
        return cls(
            arrival, source, data[1] & 0x7F, bool(data[1] & 0x80), seq, ts, ssrc, data[start:end]
        )


class _Recorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.other: list[bytes] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        packet = RtpPacket.parse(data, addr, asyncio.get_running_loop().time())
        if packet is None:
            self.other.append(data)
        else:
            self.packets.append(packet)
            self.arrived.set()


def dtmf_digits(packets: Sequence[RtpPacket], payload_type: int = DTMF_PT) -> str:
    """The RFC 4733 digits in ``packets``: one per (SSRC, timestamp), in order of arrival."""
    seen: dict[tuple[int, int], str] = {}
    for p in packets:
        if p.payload_type == payload_type and len(p.payload) >= 4 and p.payload[0] < 16:
            seen.setdefault((p.ssrc, p.timestamp), _DTMF_EVENTS[p.payload[0]])
    return "".join(seen.values())


def split_messages(log: str) -> list[tuple[str, str]]:
    """sipp's ``-trace_msg`` log as (``"received"``/``"sent"``, message text) in order."""
    out: list[tuple[str, str]] = []
    for block in re.split(r"^-{20,} [^\n]*\n", log, flags=re.M)[1:]:
        head, _, text = block.partition("\n")
        direction = "received" if " received " in head else "sent"
        out.append((direction, text.strip("\r\n") + "\n"))
    return out


def start_line(message: str) -> str:
    return message.lstrip("\r\n").split("\n", 1)[0].strip()


def header(message: str, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive) in one SIP message."""
    m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\r?$", message, re.I | re.M)
    return m.group(1) if m else None


def digest_params(value: str) -> dict[str, str]:
    """The parameters of a Digest credentials or challenge header value."""
    return {
        k.lower(): v1 or v2
        for k, v1, v2 in re.findall(r'([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', value)
    }


def digest_response(params: dict[str, str], method: str, password: str) -> str:
    """The RFC 2617 (MD5, qop auth or none) response the credentials ``params`` should carry."""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{params['username']}:{params['realm']}:{password}")
    ha2 = md5(f"{method}:{params['uri']}")
    if params.get("qop"):
        return md5(
            f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{params['qop']}:{ha2}"
        )
    return md5(f"{ha1}:{params['nonce']}:{ha2}")


@dataclass
class _SippRun:
    """One sipp process with its logs in ``workdir``; common to the far end and a test caller."""

    scenario: Path
    workdir: Path
    name: str
    proc: asyncio.subprocess.Process | None = None
    _kept: dict[str, str] = field(default_factory=dict)

    def _file(self, suffix: str) -> Path:
        return self.workdir / f"{self.name}.{suffix}"

    def _read(self, suffix: str) -> str:
        if suffix in self._kept:
            return self._kept[suffix]
        path = self._file(suffix)
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def messages(self) -> str:
        """The SIP message log (``-trace_msg``): every message sent and received, in order."""
        return self._read("msg")

    @property
    def errors(self) -> str:
        return self._read("err")

    @property
    def logs(self) -> str:
        """Lines written by the scenario's ``<log>`` actions."""
        return self._read("log")

    @property
    def screen(self) -> str:
        """sipp's last statistics screens (``-trace_screen``), written when it exits."""
        return self._read("screen")

    def received(self, start: str = "", *, retransmissions: bool = False) -> list[str]:
        """Messages sipp received whose start line begins with ``start`` (``"INVITE"``,
        ``"SIP/2.0 200"``; all when empty), without UDP retransmissions (byte-identical
        repeats) unless asked."""
        return self._select("received", start, retransmissions)

    def sent(self, start: str = "", *, retransmissions: bool = False) -> list[str]:
        return self._select("sent", start, retransmissions)

    def _select(self, direction: str, start: str, retransmissions: bool) -> list[str]:
        found = [
            m
            for d, m in split_messages(self.messages)
            if d == direction and start_line(m).startswith(start)
        ]
        return found if retransmissions else list(dict.fromkeys(found))

    def report(self) -> str:
        """The tails of the logs, for an assertion message."""
        return "\n".join(f"--- {s}\n{self._read(s)[-4000:]}" for s in ("err", "log", "msg"))

    def _common_args(self, *, transport: str, local_port: int, media_port: int) -> list[str]:
        return [
            "-sf", str(self.scenario),
            "-i", HOST,
            "-p", str(local_port),
            "-t", transport,
            "-m", "1",
            "-mi", HOST,
            "-mp", str(media_port),
            "-nostdin",
            "-trace_msg", "-message_file", str(self._file("msg")),
            "-trace_err", "-error_file", str(self._file("err")),
            "-trace_logs", "-log_file", str(self._file("log")),
            "-trace_screen", "-screen_file", str(self._file("screen")),
        ]  # fmt: skip

    async def _spawn(self, args: list[str]) -> None:
        assert SIPP is not None, "sipp not installed"
        self.proc = await asyncio.create_subprocess_exec(
            SIPP,
            *args,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def wait(self, timeout: float) -> int:
        """sipp's exit status (0: the scenario ran to its end); kills it after ``timeout``."""
        assert self.proc is not None, "not started"
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(
                f"sipp {self.name} still running after {timeout} s\n{self.report()}"
            ) from None
        return int(self.proc.returncode or 0)

    async def stop(self) -> None:
        """Ends sipp if it still runs: SIGTERM, then SIGKILL after 3 s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _workdir(workdir: Path | None) -> tuple[Path, bool]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir, False
    return Path(tempfile.mkdtemp(prefix="sipp-uas-")), True


def _scenario_path(scenario: str | Path) -> Path:
    path = Path(scenario)
    if not path.suffix:
        path = path.with_suffix(".xml")
    return path if path.is_absolute() or path.exists() else DATA / path


class SippUas:
    """A sipp far end: a UAS scenario listening on 127.0.0.1, for one call (``-m 1``).

    ``transport`` is sipp's ``-t``: ``u1`` (UDP) or ``t1`` (TCP). ``inf_rows`` become the
    ``-inf`` file (``[field0]``...); ``credentials`` is the (user, password) the auth
    scenarios accept, a shorthand for ``inf_rows=[[user, password]]``. ``call_ms`` is ``-d``, the
    length of the scenario's bare ``<pause/>`` (uas_bye_midcall: how long before its BYE).
    ``recv_timeout`` bounds every wait for a message (uas_noanswer: how long it rings, 60 s by
    default as a PBX); ``timeout`` bounds the whole run. ``audio`` is the raw PCMU sipp loops to
    the caller (a 400 Hz tone by default). ``record_rtp`` points the answer's ``m=`` port at
    :attr:`rtp` instead of at sipp. ``auto_answer`` (``-aa``) has sipp answer OPTIONS, UPDATE,
    INFO and NOTIFY with 200. ``keys`` are ``-key`` keywords; ``extra_args`` go on the end.
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        port: int | None = None,
        transport: str = "u1",
        media_port: int | None = None,
        inf_rows: list[list[str]] | None = None,
        credentials: tuple[str, str] | None = None,
        call_ms: int = 1000,
        recv_timeout: float = 60.0,
        timeout: float = 120.0,
        audio: bytes | None = None,
        record_rtp: bool = True,
        auto_answer: bool = True,
        keys: dict[str, str] | None = None,
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if transport not in ("u1", "t1"):
            raise ValueError(f"transport {transport!r}: u1 or t1")
        self.source = _scenario_path(scenario)
        self.transport = transport
        kind = socket.SOCK_STREAM if transport == "t1" else socket.SOCK_DGRAM
        self.port = port or free_port(kind)
        self.media_port = media_port or free_port(span=4)
        self.inf_rows = (
            inf_rows if inf_rows is not None else ([list(credentials)] if credentials else None)
        )
        self.credentials = credentials
        self.call_ms = call_ms
        self.recv_timeout = recv_timeout
        self.timeout = timeout
        self.audio = audio if audio is not None else pcmu_tone()
        self.record_rtp = record_rtp
        self.auto_answer = auto_answer
        self.keys = dict(keys or {})
        self.extra_args = tuple(extra_args)
        self.workdir, self._own_workdir = _workdir(workdir)
        self.sipp = _SippRun(self.workdir / self.source.name, self.workdir, "uas")
        self.rtp_port: int | None = None
        self._recorder: _Recorder | None = None
        self._rtp_transport: asyncio.DatagramTransport | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, ready_timeout: float = 5.0) -> None:
        """Starts sipp and returns once it listens on :attr:`port`."""
        text = self.source.read_text()
        if self.record_rtp:
            loop = asyncio.get_running_loop()
            self._rtp_transport, self._recorder = await loop.create_datagram_endpoint(
                _Recorder, local_addr=(HOST, 0)
            )
            self.rtp_port = int(self._rtp_transport.get_extra_info("sockname")[1])
            text = re.sub(
                r"^(\s*m=audio )\[(?:rtpstream_audio_port|media_port)\]",
                rf"\g<1>{self.rtp_port}",
                text,
                flags=re.M,
            )
        self.sipp.scenario.write_text(text)
        (self.workdir / AUDIO_FILE).write_bytes(self.audio)
        args = self.sipp._common_args(
            transport=self.transport, local_port=self.port, media_port=self.media_port
        )
        args += [
            "-bind_local",
            "-d", str(self.call_ms),
            "-recv_timeout", str(round(self.recv_timeout * 1000)),
            "-timeout", f"{math.ceil(self.timeout)}s",
            "-timeout_error",
        ]  # fmt: skip
        if self.auto_answer:
            args.append("-aa")
        if self.inf_rows is not None:
            inf = self.workdir / "uas.csv"
            inf.write_text("SEQUENTIAL\n" + "".join(";".join(r) + "\n" for r in self.inf_rows))
            args += ["-inf", str(inf)]
        for key, value in self.keys.items():
            args += ["-key", key, value]
        args += self.extra_args
        await self.sipp._spawn(args)
        await self._until_listening(ready_timeout)

    async def _until_listening(self, timeout: float) -> None:
        table, state = ("tcp", "0A") if self.transport == "t1" else ("udp", "07")
        want = f"{socket.htonl(0x7F000001):08X}:{self.port:04X}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        proc = self.sipp.proc
        assert proc is not None
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(
                    f"sipp exited ({proc.returncode}) before listening\n{self.sipp.report()}"
                )
            with open(f"/proc/net/{table}") as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if cols[1] == want and cols[3] == state:
                        return
            await asyncio.sleep(0.02)
        await self.stop()
        raise TimeoutError(f"sipp not listening on {self.port} after {timeout} s")

    async def wait(self, timeout: float) -> int:
        """sipp's exit status once the scenario ends: 0 when it ran to its end."""
        return await self.sipp.wait(timeout)

    async def stop(self) -> None:
        """Ends sipp if still running and closes the RTP recorder; keeps the logs readable."""
        await self.sipp.stop()
        if self._rtp_transport is not None:
            self._rtp_transport.close()
            self._rtp_transport = None
        if self._own_workdir and self.workdir.exists():
            for suffix in ("msg", "err", "log", "screen"):
                self.sipp._kept[suffix] = self.sipp._read(suffix)
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> SippUas:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what the far end saw -----------------------------------------------------------------

    def uri(self, user: str = "bob") -> str:
        """The SIP URI to dial: ``sip:bob@127.0.0.1:PORT`` (``;transport=tcp`` over TCP)."""
        suffix = ";transport=tcp" if self.transport == "t1" else ""
        return f"sip:{user}@{HOST}:{self.port}{suffix}"

    @property
    def messages(self) -> str:
        """sipp's SIP message log: every message it received and sent."""
        return self.sipp.messages

    @property
    def errors(self) -> str:
        return self.sipp.errors

    @property
    def logs(self) -> str:
        return self.sipp.logs

    def received(self, start: str = "", *, retransmissions: bool = False) -> list[str]:
        """Messages sipp received whose start line begins with ``start``, e.g. ``"CANCEL"``."""
        return self.sipp.received(start, retransmissions=retransmissions)

    def sent(self, start: str = "", *, retransmissions: bool = False) -> list[str]:
        return self.sipp.sent(start, retransmissions=retransmissions)

    def report(self) -> str:
        return self.sipp.report()

    @property
    def rtp(self) -> list[RtpPacket]:
        """Every RTP packet the caller sent to the answer's address (``record_rtp``)."""
        if self._recorder is None:
            raise RuntimeError("RTP is recorded only with record_rtp=True")
        return list(self._recorder.packets)

    async def rtp_arrived(self, timeout: float) -> None:
        """Returns once the first RTP packet from the caller has come."""
        if self._recorder is None:
            raise RuntimeError("RTP is recorded only with record_rtp=True")
        await asyncio.wait_for(self._recorder.arrived.wait(), timeout)

    def dtmf_digits(self, payload_type: int = DTMF_PT) -> str:
        """The RFC 4733 digits the caller sent, in order."""
        return dtmf_digits(self.rtp, payload_type)

    def digest_valid(self, password: str | None = None) -> bool:
        """Whether the last retried INVITE's (Proxy-)Authorization answers the challenge sipp
        sent: same realm, nonce and opaque, and the MD5 response of ``password``."""
        if password is None:
            if self.credentials is None:
                raise ValueError("no password given and no credentials set")
            password = self.credentials[1]
        challenges = [m for m in self.sent("SIP/2.0 401") + self.sent("SIP/2.0 407")]
        answers = [
            m
            for m in self.received("INVITE")
            if header(m, "Authorization") or header(m, "Proxy-Authorization")
        ]
        if not challenges or not answers:
            return False
        challenge = challenges[-1]
        asked = digest_params(
            header(challenge, "WWW-Authenticate") or header(challenge, "Proxy-Authenticate") or ""
        )
        invite = answers[-1]
        given = digest_params(
            header(invite, "Authorization") or header(invite, "Proxy-Authorization") or ""
        )
        if any(given.get(k) != asked.get(k) for k in ("realm", "nonce", "opaque")):
            return False
        try:
            return given.get("response") == digest_response(given, "INVITE", password)
        except KeyError:
            return False


class SippUac:
    """sipp as a test caller of a :class:`SippUas` (the tests' stand-in for the dial-out).

    ``rtp_port`` is the ``m=`` port of its offer (``-key rtp_port``): a socket of the test, to
    receive what the far end streams. It loops ``audio`` (raw PCMU) to the answer's address.
    """

    def __init__(
        self,
        scenario: str | Path,
        target: SippUas,
        *,
        rtp_port: int,
        call_ms: int = 1000,
        auth: tuple[str, str] | None = None,
        timeout: float = 30.0,
        audio: bytes | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.target = target
        self.source = _scenario_path(scenario)
        self.rtp_port = rtp_port
        self.call_ms = call_ms
        self.auth = auth
        self.timeout = timeout
        self.audio = audio if audio is not None else pcmu_tone(hz=700.0)
        self.extra_args = tuple(extra_args)
        self.workdir = target.workdir / "uac"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sipp = _SippRun(self.workdir / self.source.name, self.workdir, "uac")

    async def start(self) -> None:
        shutil.copyfile(self.source, self.sipp.scenario)
        (self.workdir / AUDIO_FILE).write_bytes(self.audio)
        kind = socket.SOCK_STREAM if self.target.transport == "t1" else socket.SOCK_DGRAM
        args = [
            f"{HOST}:{self.target.port}",
            *self.sipp._common_args(
                transport=self.target.transport,
                local_port=free_port(kind),
                media_port=free_port(span=4),
            ),
        ]
        args += [
            "-s", "bob",
            "-d", str(self.call_ms),
            "-key", "rtp_port", str(self.rtp_port),
            "-timeout", f"{math.ceil(self.timeout)}s",
            "-timeout_error",
        ]  # fmt: skip
        if self.auth:
            args += ["-au", self.auth[0], "-ap", self.auth[1]]
        await self.sipp._spawn([*args, *self.extra_args])

    async def wait(self, timeout: float) -> int:
        return await self.sipp.wait(timeout)

    async def stop(self) -> None:
        await self.sipp.stop()

    def received(self, start: str = "") -> list[str]:
        return self.sipp.received(start)

    def report(self) -> str:
        return self.sipp.report()
