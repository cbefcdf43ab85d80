"""The sipp far ends for dial-out (tests/data/sipp/uas_*.xml), proven with sipp as the caller.

Each test runs one uas_ scenario under :class:`SippUas` and a small sipp caller
(uac_for_uas_*.xml) against it, over real loopback sockets, and checks both exit statuses and
what the far end logged, recorded (RTP, RFC 4733 events) and streamed back.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.sipp_uas import (
    DATA,
    HOST,
    RtpPacket,
    SippUac,
    SippUas,
    _Recorder,
    digest_params,
    header,
    requires_sipp,
    start_line,
)

pytestmark = [pytest.mark.integration, requires_sipp]


class Phone:
    """The caller's media socket: what the far end streams to the offer's m= port."""

    def __init__(self, transport: asyncio.DatagramTransport, recorder: _Recorder) -> None:
        self.transport = transport
        self.recorder = recorder
        self.port = int(transport.get_extra_info("sockname")[1])

    @property
    def packets(self) -> list[RtpPacket]:
        return self.recorder.packets

    def send_dtmf(self, digits: str, port: int) -> None:
        """RFC 4733 events for ``digits`` to ``(HOST, port)``: 3 updates then 3 ends each."""
        seq, ssrc = 7000, 0xD7F0
        for i, digit in enumerate(digits):
            event = "0123456789*#ABCD".index(digit)
            timestamp = 80000 + i * 1600
            for n, (end, duration) in enumerate([(0, 160), (0, 320), (0, 480)] + [(1, 640)] * 3):
                marker = 0x80 if n == 0 else 0
                header_ = struct.pack("!BBHII", 0x80, marker | 101, seq, timestamp, ssrc)
                payload = struct.pack("!BBH", event, (end << 7) | 10, duration)
                self.transport.sendto(header_ + payload, (HOST, port))
                seq += 1


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    loop = asyncio.get_running_loop()
    transport, recorder = await loop.create_datagram_endpoint(_Recorder, local_addr=(HOST, 0))
    yield Phone(transport, recorder)
    transport.close()


async def run_call(uas: SippUas, uac: SippUac, timeout: float = 15) -> tuple[int, int]:
    """Both exit statuses once the caller and the far end are done."""
    await uac.start()
    try:
        uac_rc = await uac.wait(timeout)
        uas_rc = await uas.wait(timeout)
    finally:
        await uac.stop()
    return uas_rc, uac_rc


def audio_of(packets: list[RtpPacket], payload_type: int = 0) -> list[RtpPacket]:
    return [p for p in packets if p.payload_type == payload_type]


def assert_is_loop_of(packets: list[RtpPacket], audio: bytes) -> None:
    """Every 20 ms payload is a slice of the looped file, in sequence, one SSRC."""
    looped = audio * 3
    assert {len(p.payload) for p in packets} == {160}
    assert all(p.payload in looped for p in packets)
    assert len({p.ssrc for p in packets}) == 1
    seqs = [p.sequence for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs)), seqs


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_answer_streams_audio_and_records_rtp_and_dtmf(
    tmp_path: Path, phone: Phone, transport: str
) -> None:
    """uas_answer: 100, 180, 200 (PCMU + 101), ACK, BYE -> 200; audio both ways, DTMF seen."""
    uas = SippUas("uas_answer", transport=transport, workdir=tmp_path, recv_timeout=10)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_call", uas, rtp_port=phone.port, call_ms=1500)
        await uac.start()
        await uas.rtp_arrived(10)
        assert uas.rtp_port is not None
        phone.send_dtmf("1#", uas.rtp_port)
        assert await uac.wait(15) == 0, uac.report()
        assert await uas.wait(15) == 0, uas.report()
    finally:
        await uac.stop()
        await uas.stop()

    assert uas.uri() == f"sip:bob@127.0.0.1:{uas.port}" + (
        ";transport=tcp" if transport == "t1" else ""
    )
    assert [len(uas.received(m)) for m in ("INVITE", "ACK", "BYE")] == [1, 1, 1]
    assert [len(uas.sent(f"SIP/2.0 {c}")) for c in (100, 180)] == [1, 1]
    answer = uas.sent("SIP/2.0 200")[0]
    assert f"m=audio {uas.rtp_port} RTP/AVP 0 101" in answer
    assert "a=rtpmap:101 telephone-event/8000" in answer
    assert header(answer, "CSeq") == "1 INVITE"

    # what the caller sent reached the far end (sipp's own PCMU stream, then our DTMF)
    assert len(audio_of(uas.rtp)) >= 40, len(uas.rtp)
    assert_is_loop_of(audio_of(uas.rtp), uac.audio)
    assert uas.dtmf_digits() == "1#"

    # what the far end streamed reached the caller: its PCMU loop, from sipp's media port
    heard = audio_of(phone.packets)
    assert len(heard) >= 40, len(phone.packets)
    assert_is_loop_of(heard, uas.audio)
    assert {p.source for p in heard} == {(HOST, uas.media_port)}


async def test_answer_without_recorder_is_symmetric(tmp_path: Path, phone: Phone) -> None:
    """record_rtp=False: the answer names sipp's own RTP port, the one its audio comes from."""
    uas = SippUas("uas_answer", workdir=tmp_path, recv_timeout=10, record_rtp=False)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_call", uas, rtp_port=phone.port, call_ms=1000)
        assert await run_call(uas, uac) == (0, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    assert uas.rtp_port is None
    assert f"m=audio {uas.media_port} RTP/AVP 0 101" in uas.sent("SIP/2.0 200")[0]
    heard = audio_of(phone.packets)
    assert len(heard) >= 25
    assert {p.source for p in heard} == {(HOST, uas.media_port)}
    with pytest.raises(RuntimeError):
        _ = uas.rtp


async def test_answer_handles_options_and_reinvite(tmp_path: Path, phone: Phone) -> None:
    """In the call, an OPTIONS gets 200 (-aa) and a re-INVITE gets 200 with the same answer."""
    uas = SippUas("uas_answer", workdir=tmp_path, recv_timeout=10)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_reinvite", uas, rtp_port=phone.port, call_ms=300)
        assert await run_call(uas, uac) == (0, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    assert len(uas.received("INVITE")) == 2
    assert len(uas.received("OPTIONS")) == 1
    oks = {header(m, "CSeq"): m for m in uas.sent("SIP/2.0 200")}
    assert set(oks) == {"1 INVITE", "2 OPTIONS", "3 INVITE", "10 BYE"}
    assert "m=audio" in oks["3 INVITE"]


async def test_auth_accepts_the_right_digest(tmp_path: Path, phone: Phone) -> None:
    """uas_auth: 401 (qop=auth), the retry verified by sipp's verifyauth -> 200 ... BYE."""
    uas = SippUas("uas_auth", workdir=tmp_path, credentials=("alice", "s3cret"), recv_timeout=10)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_call", uas, rtp_port=phone.port, auth=("alice", "s3cret"))
        assert await run_call(uas, uac) == (0, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    challenge = header(uas.sent("SIP/2.0 401")[0], "WWW-Authenticate") or ""
    assert challenge.startswith("Digest ")
    asked = digest_params(challenge)
    assert (asked["realm"], asked["algorithm"], asked["qop"]) == ("sipscribe.test", "MD5", "auth")
    invites = uas.received("INVITE")
    assert len(invites) == 2 and header(invites[0], "Authorization") is None
    given = digest_params(header(invites[1], "Authorization") or "")
    assert given["qop"] == "auth"
    assert (given["nonce"], given["opaque"]) == (asked["nonce"], asked["opaque"])
    assert given["nc"] and given["cnonce"]
    assert "auth accepted" in uas.logs
    assert uas.digest_valid()
    assert not uas.digest_valid("wrong")
    assert len(uas.received("BYE")) == 1


async def test_auth_refuses_a_wrong_password(tmp_path: Path, phone: Phone) -> None:
    """A bad digest: 403 -> ACK and a failed call (exit 1), so a test sees the refusal."""
    uas = SippUas("uas_auth", workdir=tmp_path, credentials=("alice", "s3cret"), recv_timeout=10)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_call", uas, rtp_port=phone.port, auth=("alice", "guess"))
        assert await run_call(uas, uac) == (1, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    assert len(uas.sent("SIP/2.0 403")) == 1
    assert [header(m, "CSeq") for m in uas.received("ACK")] == ["1 ACK", "2 ACK"]
    assert "auth rejected" in uas.logs
    assert not uas.digest_valid()


@pytest.mark.parametrize("password", ["s3cret", "guess"])
async def test_proxy_auth(tmp_path: Path, phone: Phone, password: str) -> None:
    """uas_proxy_auth: 407 + Proxy-Authenticate; sipp accepts any well-formed Digest retry, the
    harness checks the hash."""
    uas = SippUas(
        "uas_proxy_auth", workdir=tmp_path, credentials=("alice", "s3cret"), recv_timeout=10
    )
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_call", uas, rtp_port=phone.port, auth=("alice", password))
        assert await run_call(uas, uac) == (0, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    assert header(uas.sent("SIP/2.0 407")[0], "Proxy-Authenticate")
    retry = uas.received("INVITE")[1]
    assert header(retry, "Authorization") is None
    assert digest_params(header(retry, "Proxy-Authorization") or "")["qop"] == "auth"
    assert uas.digest_valid() is (password == "s3cret")


async def test_proxy_auth_refuses_a_retry_without_credentials(tmp_path: Path, phone: Phone) -> None:
    """A retried INVITE with no Proxy-Authorization: 403 -> ACK, failed call."""
    caller = tmp_path / "uac_no_credentials.xml"
    text = (DATA / "uac_for_uas_call.xml").read_text()
    caller.write_text(text.replace("      [authentication]\n", ""))
    uas = SippUas("uas_proxy_auth", workdir=tmp_path / "uas", credentials=("alice", "s3cret"))
    await uas.start()
    try:
        uac = SippUac(caller, uas, rtp_port=phone.port)
        assert await run_call(uas, uac) == (1, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    assert header(uas.received("INVITE")[1], "Proxy-Authorization") is None
    assert len(uas.sent("SIP/2.0 403")) == 1
    assert "auth rejected" in uas.logs


async def test_busy(tmp_path: Path, phone: Phone) -> None:
    """uas_busy: 100 -> 486 -> ACK."""
    uas = SippUas("uas_busy", workdir=tmp_path, recv_timeout=10)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_rejected", uas, rtp_port=phone.port)
        assert await run_call(uas, uac) == (0, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    assert [start_line(m) for m in uas.sent()] == ["SIP/2.0 100 Trying", "SIP/2.0 486 Busy Here"]
    assert [header(m, "CSeq") for m in uas.received("ACK")] == ["1 ACK"]
    assert uas.rtp == []


async def test_noanswer_until_cancel(tmp_path: Path, phone: Phone) -> None:
    """uas_noanswer: rings until the CANCEL -> 200 (CANCEL), 487 (INVITE) -> ACK."""
    uas = SippUas("uas_noanswer", workdir=tmp_path, recv_timeout=10)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_cancel", uas, rtp_port=phone.port, call_ms=1000)
        assert await run_call(uas, uac) == (0, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    cancel = uas.received("CANCEL")
    assert len(cancel) == 1
    invite = uas.received("INVITE")[0]
    assert header(cancel[0], "Via") == header(invite, "Via")
    statuses = [start_line(m) for m in uas.sent()]
    assert statuses == [
        "SIP/2.0 100 Trying",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 200 OK",
        "SIP/2.0 487 Request Terminated",
    ]
    assert header(uas.sent("SIP/2.0 487")[0], "CSeq") == "1 INVITE"
    assert header(uas.sent("SIP/2.0 200")[0], "CSeq") == "1 CANCEL"
    assert len(uas.received("ACK")) == 1


async def test_noanswer_gives_up_without_cancel(tmp_path: Path, phone: Phone) -> None:
    """No CANCEL within recv_timeout: 480 -> ACK, and the far end reports a failed call."""
    uas = SippUas("uas_noanswer", workdir=tmp_path, recv_timeout=1.0)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_rejected", uas, rtp_port=phone.port)
        assert await run_call(uas, uac) == (1, 0), uas.report() + uac.report()
    finally:
        await uas.stop()
    assert uas.received("CANCEL") == []
    assert header(uas.sent("SIP/2.0 480")[0], "CSeq") == "1 INVITE"
    assert "no CANCEL in time" in uas.logs


async def test_bye_midcall(tmp_path: Path, phone: Phone) -> None:
    """uas_bye_midcall: answered, streams for call_ms, then BYE to the caller's Contact."""
    uas = SippUas("uas_bye_midcall", workdir=tmp_path, call_ms=1200, recv_timeout=10)
    await uas.start()
    try:
        uac = SippUac("uac_for_uas_wait_bye", uas, rtp_port=phone.port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await run_call(uas, uac) == (0, 0), uas.report() + uac.report()
        assert loop.time() - started >= 1.2
    finally:
        await uas.stop()
    invite = uas.received("INVITE")[0]
    bye = uac.received("BYE")
    assert len(bye) == 1
    contact = (header(invite, "Contact") or "").strip("<>").split(";")[0]
    assert bye[0].split("\n", 1)[0].startswith(f"BYE {contact}")
    ok = uas.sent("SIP/2.0 200")[0]
    assert header(bye[0], "From") == header(ok, "To")
    assert header(bye[0], "To") == header(invite, "From")
    assert header(bye[0], "Call-ID") == header(invite, "Call-ID")
    assert len(uas.received("SIP/2.0 200")) == 1
    assert_is_loop_of(audio_of(phone.packets), uas.audio)
    assert len(audio_of(phone.packets)) >= 40
