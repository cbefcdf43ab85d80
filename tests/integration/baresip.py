"""Run baresip (Debian ``baresip``) as a real SIP far end on loopback, for dial-out tests.

A test dials `Baresip.uri`; baresip answers at once (``answermode=auto``), plays the WAV it
was given into the call as its microphone, and reports through its ``ctrl_tcp`` module (JSON
netstrings on a loopback TCP port) what a person at the far end would notice: the call being
established, each RFC 4733 digit received (``CALL_DTMF_START``, its digit in ``param``) and
the call closing (``CALL_CLOSED``, the reason in ``param``). The same channel carries
commands: `Baresip.hangup` makes baresip send the BYE.

Built for baresip 1.0.0 (Debian bookworm); the config template is
``tests/data/baresip/config.template``. What that version does that matters here:

* audio: the ``aufile`` source must be opened at the file's own rate (``ausrc_srate``), and
  baresip resamples to each codec; the ``aubridge`` player with a device no source uses
  discards the received audio (this version's ``aufile`` cannot record);
* when the WAV ends, ``menu`` hangs up with reason ``"end of file"``. `Baresip.start` appends
  ``tail_silence_s`` of silence so a call outlives the speech; pass None to get that hang-up;
* received DTMF is reported on the first packet of each event (``CALL_DTMF_START``); the
  matching ``CALL_DTMF_END`` names no digit and is sometimes never sent, so it is not used;
* network: SIP and ctrl_tcp listen on 127.0.0.1 and baresip advertises only 127.0.0.1, but
  it binds its RTP sockets to 0.0.0.0 (hard-coded in every version: "we listen on all
  interfaces"); it sends media only to the loopback address of the peer's SDP;
* baresip never challenges an incoming INVITE: ``auth`` gives it credentials to answer
  challenges to requests it sends (the BYE of `hangup`).

The speech: `speech_wav` writes recording `SPEECH_NAME` of Debian's
``pocketsphinx-testdata`` (LibriVox, 6.6 s), whose reference transcript is `SPEECH_TEXT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import socket
import string
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pytest

from sipscribe.media.resample import resample
from sipscribe.testing.corpus import RATE, CorpusMissing, load_corpus

BARESIP = shutil.which("baresip")
SETPRIV = shutil.which("setpriv")  # util-linux: kill baresip if the test process dies
STDBUF = shutil.which("stdbuf")  # coreutils: line-buffered output, so the log is live
TEMPLATE = Path(__file__).resolve().parent.parent / "data" / "baresip" / "config.template"

requires_baresip = pytest.mark.skipif(
    BARESIP is None, reason="baresip not installed (apt-get install baresip)"
)

#: The recording `speech_wav` writes, and its reference transcript (for WER).
SPEECH_NAME = "sense_and_sensibility_01_austen_64kb-0870"
SPEECH_TEXT = (
    "and mister john dashwood had then leisure to consider how much there might be "
    "prudently in his power to do for them"
)

#: SDP encoding name → the baresip module that provides it.
CODEC_MODULES = {"PCMU": "g711", "PCMA": "g711", "G722": "g722", "opus": "opus"}
DEFAULT_CODECS = ("PCMU", "PCMA", "G722", "opus")
_RATES = (8000, 16000, 32000, 48000)
_READY_LINE = "baresip is ready."
_LOG_LIMIT = 400_000


@dataclass(frozen=True, slots=True)
class SpeechWav:
    path: Path
    text: str
    rate: int
    duration_s: float


def speech_wav(directory: Path, *, rate: int = 16000) -> SpeechWav:
    """Write `SPEECH_NAME` as a 16-bit mono WAV at ``rate``; skips if the corpus is missing."""
    try:
        recordings = {r.name: r for r in load_corpus(sets=("librivox",))}
    except CorpusMissing as exc:
        pytest.skip(str(exc))
    recording = recordings[SPEECH_NAME]
    audio = resample(recording.audio, RATE, rate)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    path = directory / f"speech-{rate}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return SpeechWav(path, recording.text, rate, pcm.size / rate)


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_sip_port(tries: int = 50) -> int:
    """A port free for UDP and TCP, with the next one free for TCP (baresip listens there too)."""
    for _ in range(tries):
        port = random.randrange(20000, 30000)
        if (
            _bindable(port, socket.SOCK_DGRAM)
            and _bindable(port, socket.SOCK_STREAM)
            and _bindable(port + 1, socket.SOCK_STREAM)
        ):
            return port
    raise RuntimeError("no free SIP port pair on 127.0.0.1")


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rtp_range(tries: int = 50) -> tuple[int, int]:
    """100 ports whose first pair is free now; baresip picks another in range if one is taken."""
    for _ in range(tries):
        low = random.randrange(30000, 39900, 2)
        if _bindable(low, socket.SOCK_DGRAM) and _bindable(low + 1, socket.SOCK_DGRAM):
            return low, low + 99
    raise RuntimeError("no free RTP port range on 127.0.0.1")


def _padded_wav(source: Path, target: Path, tail_silence_s: float | None) -> int:
    """Copy ``source`` with silence appended; returns its rate. aufile needs 16-bit mono."""
    with wave.open(str(source)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() not in _RATES:
            raise ValueError(f"{source}: baresip's aufile needs 16-bit mono at one of {_RATES}")
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames + bytes(2 * int(rate * (tail_silence_s or 0.0))))
    return rate


def _account_line(user: str, auth: tuple[str, str] | None, codecs: Sequence[str]) -> str:
    params = ["regint=0", "answermode=auto", f"audio_codecs={','.join(c.lower() for c in codecs)}"]
    if auth is not None:
        params += [f"auth_user={auth[0]}", f"auth_pass={auth[1]}"]
    return f"<sip:{user}@127.0.0.1>;" + ";".join(params) + "\n"


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """One baresip process with its own config directory; ``async with`` stops it.

    Every wait is bounded and raises AssertionError carrying `log` on timeout, or at once if
    baresip exits. Call `stop` (or leave the ``async with``) in every case: it kills baresip.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="baresip-")) if workdir is None else workdir
        self.sip_port = 0
        self.ctrl_port = 0
        self.user = "bob"
        #: Every ctrl_tcp event, in arrival order (dicts with "type", "param", "id", ...).
        self.events: list[dict[str, Any]] = []
        self._output: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Condition()
        self._ready = False
        self._exited = False
        self._responses: dict[str, dict[str, Any]] = {}
        self._token = 0

    async def __aenter__(self) -> Baresip:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def uri(self) -> str:
        """Where to send the INVITE."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def dtmf_received(self) -> list[str]:
        """Digits baresip reported receiving as RFC 4733 events, in order."""
        return [str(e.get("param", "")) for e in self.events if e["type"] == "CALL_DTMF_START"]

    @property
    def log(self) -> str:
        """baresip's output and its ctrl_tcp events, for failure messages."""
        events = "\n".join(json.dumps(e) for e in self.events)
        return f"{''.join(self._output)}\n--- ctrl_tcp events ---\n{events}"

    async def start(
        self,
        *,
        wav: Path,
        sip_port: int | None = None,
        user: str = "bob",
        auth: tuple[str, str] | None = None,
        codecs: Sequence[str] = DEFAULT_CODECS,
        tail_silence_s: float | None = 60.0,
        sip_trace: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Start baresip listening on ``sip_port`` (a free one if None) and wait until ready.

        ``codecs`` (names of `CODEC_MODULES`, in preference order) limits what baresip
        accepts; ``sip_trace`` puts every SIP message in `log`.
        """
        if BARESIP is None:
            pytest.skip("baresip not installed (apt-get install baresip)")
        if self._proc is not None:
            raise RuntimeError("baresip already started")
        unknown = [c for c in codecs if c not in CODEC_MODULES]
        if unknown or not codecs:
            raise ValueError(f"codecs must be some of {sorted(CODEC_MODULES)}, not {unknown}")
        self.user = user
        self.sip_port = sip_port or free_sip_port()
        self.ctrl_port = free_tcp_port()
        rtp_min, rtp_max = _rtp_range()
        conf = self.workdir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        played = conf / "play.wav"
        rate = _padded_wav(wav, played, tail_silence_s)
        modules = dict.fromkeys(CODEC_MODULES[c] for c in codecs)
        (conf / "config").write_text(
            string.Template(TEMPLATE.read_text()).substitute(
                sip_port=self.sip_port,
                ctrl_port=self.ctrl_port,
                rtp_min=rtp_min,
                rtp_max=rtp_max,
                wav=played,
                wav_rate=rate,
                codec_modules="\n".join(f"module\t\t\t{m}.so" for m in modules),
            )
        )
        (conf / "accounts").write_text(_account_line(user, auth, codecs))
        argv = [BARESIP, "-f", str(conf), *(["-s"] if sip_trace else [])]
        if STDBUF is not None:
            argv = [STDBUF, "-oL", "-eL", *argv]
        if SETPRIV is not None:
            argv = [SETPRIV, "--pdeathsig", "KILL", *argv]
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._tasks.append(asyncio.create_task(self._read_output(self._proc)))
        await self._wait(lambda: self._ready, timeout, "baresip to be ready")
        reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.ctrl_port), timeout
        )
        self._tasks.append(asyncio.create_task(self._read_ctrl(reader)))

    async def wait_event(self, kind: str, timeout: float, *, count: int = 1) -> dict[str, Any]:
        """The ``count``-th ctrl_tcp event of type ``kind`` (e.g. "CALL_INCOMING")."""
        await self._wait(lambda: len(self._of(kind)) >= count, timeout, f"{count}× {kind}")
        return self._of(kind)[count - 1]

    async def wait_call_established(self, timeout: float) -> dict[str, Any]:
        """Wait for baresip to have answered and received the ACK; returns the event."""
        return await self.wait_event("CALL_ESTABLISHED", timeout)

    async def wait_call_closed(self, timeout: float) -> str:
        """Wait for the call to end; returns baresip's reason ("Connection reset by peer" when
        the other side sent BYE, "Connection reset by user" after `hangup`, "end of file",
        or the status of a failed setup)."""
        return str((await self.wait_event("CALL_CLOSED", timeout)).get("param", ""))

    async def wait_dtmf(self, n: int, timeout: float) -> list[str]:
        """The first ``n`` digits baresip received."""
        await self._wait(lambda: len(self.dtmf_received) >= n, timeout, f"{n} DTMF digits")
        return self.dtmf_received[:n]

    async def hangup(self, timeout: float = 5.0) -> None:
        """Make baresip end the call (it sends BYE); returns when baresip acknowledged."""
        await self.command("hangup", timeout=timeout)

    async def command(self, name: str, params: str = "", *, timeout: float = 5.0) -> str:
        """Run a baresip command over ctrl_tcp; returns its output, raises if it failed."""
        if self._writer is None:
            raise RuntimeError("baresip is not running")
        self._token += 1
        token = f"t{self._token}"
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._writer.write(_netstring(body))
        await self._writer.drain()
        await self._wait(lambda: token in self._responses, timeout, f"reply to {name!r}")
        reply = self._responses.pop(token)
        if not reply.get("ok"):
            raise AssertionError(f"baresip command {name!r} failed: {reply}\n{self.log}")
        return str(reply.get("data", ""))

    async def stop(self) -> None:
        """Kill baresip (SIGTERM, then SIGKILL after 3 s) and clean up; safe to repeat."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 1)
            self._writer = None
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.wait_for(proc.wait(), 3)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- internals --------------------------------------------------------------------------

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: predicate() or self._exited)
            except TimeoutError:
                raise AssertionError(f"no {what} within {timeout} s\n{self.log}") from None
        if not predicate():
            code = self._proc.returncode if self._proc else None
            raise AssertionError(f"baresip exited ({code}) before {what}\n{self.log}")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        size = 0
        try:
            while chunk := await proc.stdout.read(4096):
                text = chunk.decode(errors="replace")
                if size < _LOG_LIMIT:
                    self._output.append(text)
                    size += len(text)
                if not self._ready and _READY_LINE in "".join(self._output[-2:]):
                    self._ready = True
                    await self._notify()
        finally:
            await proc.wait()
            self._output.append(f"\n[baresip exited with {proc.returncode}]\n")
            self._exited = True
            await self._notify()

    async def _read_ctrl(self, reader: asyncio.StreamReader) -> None:
        """ctrl_tcp frames each JSON message as a netstring: ``<length>:<json>,``."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int((await reader.readuntil(b":"))[:-1])
                frame = await reader.readexactly(length + 1)
                message = json.loads(frame[:-1])
                if message.get("event"):
                    self.events.append(message)
                elif message.get("response"):
                    self._responses[str(message.get("token"))] = message
                await self._notify()
