"""The baresip harness works: a plain SIP UAC over loopback UDP calls baresip, hears its speech,
sends it RFC 4733 digits that it reports, and either side ends the call.

The UAC is raw SIP text plus sipscribe's own message and SDP parsers, enough for one dialog;
the RTP is sipscribe's packet, codec and DTMF code. No part of sipscribe's call handling is
involved, so these tests hold before dial-out exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import re
import socket
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest

from sipscribe.media.codecs import get_decoder
from sipscribe.media.dtmf import DtmfSender
from sipscribe.media.resample import resample
from sipscribe.media.rtp import RtpPacket
from sipscribe.sip.message import Request, Response, make_response, parse_message
from sipscribe.sip.sdp import RtpCodec, SessionDescription

from .baresip import SPEECH_TEXT, Baresip, SpeechWav, requires_baresip, speech_wav

pytestmark = requires_baresip

#: What the UAC offers: payload type → rtpmap.
OFFER = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000", 111: "opus/48000/2"}
TELEPHONE_EVENT = 101


class RawUac:
    """One outgoing SIP dialog over UDP on 127.0.0.1, with an RTP socket for its media."""

    def __init__(self) -> None:
        self.sip = self._socket()
        self.rtp = self._socket()
        self.sip_port = self.sip.getsockname()[1]
        self.rtp_port = self.rtp.getsockname()[1]
        self.call_id = uuid.uuid4().hex
        self.tag = uuid.uuid4().hex[:10]
        self.cseq = 1
        self.target: tuple[str, int] = ("127.0.0.1", 0)
        self.request_uri = ""
        self.to = ""
        self.answer: SessionDescription | None = None

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        return s

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    def _request(self, method: str, body: str = "", content_type: str | None = None) -> bytes:
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        cseq = self.cseq if method != "ACK" else 1
        lines = [
            f"{method} {self.request_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:alice@127.0.0.1:{self.sip_port}>;tag={self.tag}",
            f"To: {self.to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:alice@127.0.0.1:{self.sip_port}>",
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    async def _send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sip, data, self.target)

    async def _receive(self, timeout: float) -> Request | Response:
        async with asyncio.timeout(timeout):
            data = await asyncio.get_running_loop().sock_recv(self.sip, 65535)
        return parse_message(data)

    async def invite(self, uri: str, port: int, offer: dict[int, str]) -> SessionDescription:
        """INVITE with an SDP offer of ``offer`` + telephone-event; ACK the 200; the answer."""
        self.request_uri = uri
        self.to = f"<{uri}>"
        self.target = ("127.0.0.1", port)
        pts = [*offer, TELEPHONE_EVENT]
        sdp = "\r\n".join(
            [
                "v=0",
                f"o=- {random.getrandbits(31)} 1 IN IP4 127.0.0.1",
                "s=-",
                "c=IN IP4 127.0.0.1",
                "t=0 0",
                f"m=audio {self.rtp_port} RTP/AVP {' '.join(map(str, pts))}",
                *(f"a=rtpmap:{pt} {rtpmap}" for pt, rtpmap in offer.items()),
                f"a=rtpmap:{TELEPHONE_EVENT} telephone-event/8000",
                f"a=fmtp:{TELEPHONE_EVENT} 0-15",
                "a=ptime:20",
                "a=sendrecv",
                "",
            ]
        )
        await self._send(self._request("INVITE", sdp, "application/sdp"))
        for _ in range(20):  # 100 Trying, 180 Ringing, then the final answer
            message = await self._receive(10)
            if isinstance(message, Response) and message.cseq.method == "INVITE":
                if message.is_provisional:
                    continue
                assert message.is_success, f"INVITE answered {message.status} {message.reason}"
                self.to = message.headers.get("To") or self.to
                contact = message.contacts
                assert isinstance(contact, tuple) and contact, "200 OK has no Contact"
                self.request_uri = str(contact[0].uri)
                await self._send(self._request("ACK"))
                self.answer = SessionDescription.parse(message.body)
                return self.answer
        raise AssertionError("no final response to INVITE")

    def remote_media(self) -> tuple[tuple[str, int], dict[int, RtpCodec]]:
        """Where baresip wants RTP, and the codecs it accepted."""
        assert self.answer is not None
        connection = self.answer.media_connection(0)
        assert connection is not None
        media = self.answer.media[0]
        return (connection.host, media.port), media.codecs

    async def bye(self) -> Response:
        self.cseq += 1
        await self._send(self._request("BYE"))
        for _ in range(20):  # skip any retransmitted 200 OK to the INVITE
            message = await self._receive(5)
            if isinstance(message, Response) and message.cseq.method == "BYE":
                return message
        raise AssertionError("no response to BYE")

    async def wait_bye(self, timeout: float) -> Request:
        """Receive the far end's BYE and answer it 200 OK."""
        bye = await self._next_bye(timeout)
        await self._send(bytes(make_response(bye, 200)))
        return bye

    async def challenge_bye(self, timeout: float) -> tuple[Request, Request]:
        """Answer the far end's BYE 401 (Digest, MD5, qop=auth), its retry 200; both BYEs."""
        first = await self._next_bye(timeout)
        challenge = 'Digest realm="sipscribe", nonce="f00dcafe", qop="auth", algorithm=MD5'
        await self._send(
            bytes(make_response(first, 401, headers=[("WWW-Authenticate", challenge)]))
        )
        retry = await self._next_bye(timeout)
        await self._send(bytes(make_response(retry, 200)))
        return first, retry

    async def _next_bye(self, timeout: float) -> Request:
        async with asyncio.timeout(timeout):
            while True:
                message = await self._receive(timeout)
                if isinstance(message, Request) and message.method == "BYE":
                    return message

    async def receive_rtp(self, seconds: float) -> list[RtpPacket]:
        """Every RTP packet that arrives within ``seconds`` (the first one waited for 5 s)."""
        loop = asyncio.get_running_loop()
        packets = [RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(self.rtp, 2048), 5))]
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.rtp, 2048), left)
            except TimeoutError:
                break
            packets.append(RtpPacket.parse(data))
        return packets

    async def send_dtmf(self, digits: str, payload_type: int, to: tuple[str, int]) -> None:
        """Send ``digits`` as RFC 4733 events on the real-time schedule DtmfSender gives."""
        loop = asyncio.get_running_loop()
        sender = DtmfSender(payload_type, random.getrandbits(32))
        start_ms = loop.time() * 1000
        for item in sender.packets(
            digits, sequence_number=random.getrandbits(16), timestamp=0, start_ms=start_ms
        ):
            await asyncio.sleep(max(0.0, item.send_ms / 1000 - loop.time()))
            await loop.sock_sendto(self.rtp, bytes(item.packet), to)


@pytest.fixture
def speech(tmp_path: Path) -> SpeechWav:
    return speech_wav(tmp_path, rate=16000)


def decode(packets: list[RtpPacket], codec: RtpCodec) -> tuple[np.ndarray, int]:
    """The packets' audio in sequence order, as float32 at the decoder's rate."""
    decoder = get_decoder(codec.encoding, codec.clock_rate, codec.channels)
    ordered = sorted(packets, key=lambda p: p.sequence_number)
    pcm = np.concatenate([decoder.decode(p.payload) for p in ordered])
    return pcm.astype(np.float32) / 32768.0, decoder.sample_rate


def best_correlation(heard: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``heard`` against every offset in ``reference``."""
    n = heard.size + reference.size
    spectrum = np.fft.rfft(reference, n) * np.conj(np.fft.rfft(heard, n))
    corr = np.fft.irfft(spectrum, n)[: reference.size - heard.size + 1]
    cumulative = np.concatenate([[0.0], np.cumsum(np.square(reference, dtype=np.float64))])
    energy = cumulative[heard.size :] - cumulative[: -heard.size]  # of each reference window
    return float(np.max(corr / np.sqrt(energy * np.sum(np.square(heard)) + 1e-12)))


def test_speech_transcript_is_documented(speech: SpeechWav) -> None:
    assert speech.text == SPEECH_TEXT
    assert 6.0 < speech.duration_s < 7.5


def test_correlation_tells_the_speech_from_other_sound(speech: SpeechWav) -> None:
    """The check the call tests rely on: a slice of the WAV matches, other sound does not."""
    reference = _read(speech.path)[: speech.rate * 4]
    piece = reference[speech.rate : speech.rate * 2]
    assert best_correlation(piece, reference) > 0.99
    noise = np.random.default_rng(1).normal(0, 0.05, speech.rate).astype(np.float32)
    assert best_correlation(noise, reference) < 0.2
    later = _read(speech.path)[speech.rate * 5 : speech.rate * 6]  # words not in the first 4 s
    assert best_correlation(later, reference) < 0.5


@pytest.mark.parametrize(
    ("codec", "min_correlation"), [("PCMU", 0.85), ("PCMA", 0.85), ("G722", 0.95), ("opus", 0.8)]
)
async def test_baresip_answers_and_plays_the_speech(
    tmp_path: Path, speech: SpeechWav, codec: str, min_correlation: float
) -> None:
    """Baresip limited to one codec picks it from a four-codec offer and sends the WAV's speech."""
    uac = RawUac()
    async with Baresip(tmp_path / "baresip") as far:
        try:
            await far.start(wav=speech.path, codecs=(codec,))
            answer = await uac.invite(far.uri, far.sip_port, OFFER)
            await far.wait_call_established(5)
            (host, _), codecs = uac.remote_media()
            assert host == "127.0.0.1"
            assert uac.request_uri.startswith("sip:") and "@127.0.0.1:" in uac.request_uri
            first = answer.media[0].payload_types[0]
            assert codecs[first].encoding.upper() == codec.upper()
            packets = await uac.receive_rtp(2.5)
            assert {p.payload_type for p in packets} == {first}
            assert len(packets) >= 100  # 20 ms packets for 2.5 s
            ordered = sorted(packets, key=lambda p: p.sequence_number)
            steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(ordered)}
            assert steps == {codecs[first].clock_rate // 50}  # ptime 20, no gap
            heard, rate = decode(packets, codecs[first])
            heard = resample(heard, rate, speech.rate)
            rms = float(np.sqrt(np.mean(np.square(heard))))
            assert rms > 0.02, f"baresip sent near silence (RMS {rms:.4f})"
            reference = _read(speech.path)
            # A second of what arrived, found in the first 3.5 s of the WAV.
            window = heard[speech.rate // 2 : speech.rate * 3 // 2]
            corr = best_correlation(window, reference[: int(speech.rate * 3.5)])
            assert corr > min_correlation, f"{codec}: heard audio matches the WAV at {corr:.2f}"
            response = await uac.bye()
            assert response.status == 200
            assert await far.wait_call_closed(5) == "Connection reset by peer"
        finally:
            uac.close()


async def test_baresip_reports_rfc4733_digits(tmp_path: Path, speech: SpeechWav) -> None:
    digits = "0123456789*#ABCD"
    uac = RawUac()
    async with Baresip(tmp_path / "baresip") as far:
        try:
            await far.start(wav=speech.path, codecs=("PCMU",))
            await uac.invite(far.uri, far.sip_port, {0: "PCMU/8000"})
            await far.wait_call_established(5)
            media, codecs = uac.remote_media()
            events = [pt for pt, c in codecs.items() if c.encoding == "telephone-event"]
            assert events, f"baresip's answer has no telephone-event: {uac.answer}"
            await uac.send_dtmf(digits, events[0], media)
            assert await far.wait_dtmf(len(digits), 5) == list(digits)
            assert far.dtmf_received == list(digits)  # each digit once
            assert (await uac.bye()).status == 200
            await far.wait_call_closed(5)
        finally:
            uac.close()


async def test_hangup_sends_bye(tmp_path: Path, speech: SpeechWav) -> None:
    uac = RawUac()
    async with Baresip(tmp_path / "baresip") as far:
        try:
            await far.start(wav=speech.path, user="carol", codecs=("PCMU", "G722"))
            assert far.uri == f"sip:carol@127.0.0.1:{far.sip_port}"
            await uac.invite(far.uri, far.sip_port, {9: "G722/8000", 0: "PCMU/8000"})
            established = await far.wait_call_established(5)
            assert established["peeruri"] == f"sip:alice@127.0.0.1:{uac.sip_port}"
            await far.hangup()
            bye = await uac.wait_bye(5)
            assert bye.call_id == uac.call_id
            assert await far.wait_call_closed(5) == "Connection reset by user"
        finally:
            uac.close()


async def test_hangup_answers_a_digest_challenge_with_auth(
    tmp_path: Path, speech: SpeechWav
) -> None:
    """``auth`` gives baresip credentials for challenges to the requests it sends."""
    uac = RawUac()
    async with Baresip(tmp_path / "baresip") as far:
        try:
            await far.start(wav=speech.path, auth=("bob", "s3cret"), codecs=("PCMU",))
            await uac.invite(far.uri, far.sip_port, {0: "PCMU/8000"})
            await far.wait_call_established(5)
            await far.hangup()
            first, retry = await uac.challenge_bye(5)
            assert first.headers.get("Authorization") is None
            assert retry.cseq.number == first.cseq.number + 1
            header = retry.headers.get("Authorization") or ""
            params = {
                m.group(1).lower(): m.group(3) if m.group(3) is not None else m.group(2)
                for m in re.finditer(r'(\w+)=("([^"]*)"|[^,\s]+)', header)
            }
            assert header.startswith("Digest ") and params["username"] == "bob"
            # RFC 2617 §3.2.2, MD5 with qop=auth
            ha1 = md5("bob:sipscribe:s3cret")
            ha2 = md5(f"BYE:{params['uri']}")
            expected = md5(f"{ha1}:f00dcafe:{params['nc']}:{params['cnonce']}:auth:{ha2}")
            assert params["response"] == expected
            assert await far.wait_call_closed(5) == "Connection reset by user"
        finally:
            uac.close()


async def test_call_ends_when_the_wav_ends_without_tail(tmp_path: Path) -> None:
    """With ``tail_silence_s=None`` baresip hangs up itself once the speech is over."""
    wav = tmp_path / "beep.wav"
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) * 32767).astype("<i2")
    _write(wav, tone, 8000)
    uac = RawUac()
    async with Baresip(tmp_path / "baresip") as far:
        try:
            await far.start(wav=wav, codecs=("PCMU",), tail_silence_s=None)
            await uac.invite(far.uri, far.sip_port, {0: "PCMU/8000"})
            await uac.wait_bye(5)
            assert await far.wait_call_closed(2) == "end of file"
        finally:
            uac.close()


async def test_failure_messages_carry_the_log(tmp_path: Path, speech: SpeechWav) -> None:
    async with Baresip(tmp_path / "baresip") as far:
        await far.start(wav=speech.path)
        with pytest.raises(AssertionError, match="baresip is ready"):
            await far.wait_call_established(0.2)
        await far.stop()
        assert "[baresip exited" in far.log
        with pytest.raises(AssertionError, match="exited"):
            await far.wait_dtmf(1, 5)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def _write(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
