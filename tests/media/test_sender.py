"""The dial-out send side: silence at the packet rate, RFC 4733 digits, a bounded catch-up."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sipscribe.media.codecs import get_decoder
from sipscribe.media.dtmf import DtmfReceiver
from sipscribe.media.errors import DtmfError
from sipscribe.media.rtp import RtpPacket
from sipscribe.media.sender import DTMF_PAUSE_MS, RtpSender, SendConfig, silence_payload


def _run(sender: RtpSender, start: float, end: float, step: float = 5.0) -> list[RtpPacket]:
    out: list[RtpPacket] = []
    t = start
    while t <= end:
        out += sender.poll(t)
        t += step
    return out


@pytest.mark.parametrize(
    ("encoding", "clock", "decoded_rate"),
    [("PCMU", 8000, 8000), ("PCMA", 8000, 8000), ("G722", 8000, 16000), ("opus", 48000, 16000)],
)
def test_silence_payload_decodes_to_silence(encoding: str, clock: int, decoded_rate: int) -> None:
    payload = silence_payload(encoding, clock)
    decoder = get_decoder(encoding, clock, 2 if encoding == "opus" else 1, None)
    pcm = np.concatenate([decoder.decode(payload) for _ in range(5)])
    assert pcm.size >= 5 * decoded_rate // 50 * 0.9
    assert np.abs(pcm.astype(np.int32)).max() < 300  # digital silence, codec noise at most


def test_packets_at_the_packet_rate_with_running_clock() -> None:
    sender = RtpSender(SendConfig(0, "PCMU", 8000, ssrc=1234), start_ms=1000.0)
    packets = _run(sender, 1000.0, 2000.0)
    assert len(packets) == 51  # 0, 20, ..., 1000 ms
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    stamps = [p.timestamp for p in packets]
    assert all((b - a) % 2**32 == 160 for a, b in itertools.pairwise(stamps))
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert {p.ssrc for p in packets} == {1234}
    assert {len(p.payload) for p in packets} == {160}
    assert sender.next_timer() == pytest.approx(2020.0)


def test_a_long_stall_is_not_caught_up_in_a_burst() -> None:
    sender = RtpSender(SendConfig(8, "PCMA", 8000), start_ms=0.0)
    sender.poll(0.0)
    burst = sender.poll(10_000.0)
    assert len(burst) <= 51  # at most a second of packets
    assert burst[0].marker  # a new talk spurt after the gap


def test_dtmf_digits_are_received_as_sent_and_pause_audio() -> None:
    cfg = SendConfig(0, "PCMU", 8000, dtmf_payload_type=101)
    sender = RtpSender(cfg, start_ms=0.0)
    sender.poll(0.0)
    sender.send_digits("12#,9", 10.0)
    packets = _run(sender, 10.0, 3000.0)
    receiver = DtmfReceiver(8000)
    digits: list[str] = []
    dtmf_times = []
    for i, p in enumerate(packets):
        if p.payload_type == 101:
            dtmf_times.append(i)
            digits += [e.digit for e in receiver.receive(p, i * 20.0)]
    digits += [e.digit for e in receiver.flush()]
    assert digits == ["1", "2", "#", "9"]
    assert sender.digits_sent == "12#,9"
    assert not sender.sending_dtmf
    # No audio packet between the first and last packet of one digit's event.
    first = [i for i, p in enumerate(packets) if p.payload_type == 101]
    runs = np.split(np.array(first), np.where(np.diff(first) > 1)[0] + 1)
    assert len(runs) == 4
    # The comma waits: the gap before '9' is longer than the others by about the pause.
    gaps = [int(runs[k + 1][0] - runs[k][-1]) for k in range(3)]
    assert gaps[2] * 20 >= gaps[0] * 20 + DTMF_PAUSE_MS - 40
    # Sequence numbers stay dense across audio and events (one stream, RFC 4733 §2.1).
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))


def test_dtmf_needs_telephone_event_and_valid_digits() -> None:
    with pytest.raises(DtmfError, match="telephone-event"):
        RtpSender(SendConfig(0, "PCMU", 8000), start_ms=0).send_digits("1", 0)
    sender = RtpSender(SendConfig(0, "PCMU", 8000, dtmf_payload_type=101), start_ms=0)
    with pytest.raises(DtmfError, match="not a DTMF digit"):
        sender.send_digits("12x", 0)


def test_comfort_noise_when_preferred() -> None:
    cfg = SendConfig(0, "PCMU", 8000, cn_payload_type=13, prefer_cn=True)
    packets = _run(RtpSender(cfg, start_ms=0.0), 0.0, 1000.0)
    assert {p.payload_type for p in packets} == {13}
    assert 5 <= len(packets) <= 6  # one per 200 ms
