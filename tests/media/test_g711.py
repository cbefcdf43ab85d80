from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipscribe.media.codecs.g711 import (
    ALAW_TO_LINEAR,
    ULAW_TO_LINEAR,
    PcmaDecoder,
    PcmuDecoder,
    decode_alaw,
    decode_ulaw,
    encode_alaw,
    encode_ulaw,
)
from sipscribe.media.errors import CodecError
from sipscribe.media.rtp import RtpPacket
from tests.media.media_helpers import load_capture


@pytest.fixture(scope="module")
def audioop():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop", reason="audioop left the stdlib in Python 3.13")


ALL_CODES = bytes(range(256))
ALL_VALUES = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_decode_table_matches_audioop(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    assert np.array_equal(decode_ulaw(ALL_CODES), expected)
    assert np.array_equal(ULAW_TO_LINEAR, expected)


def test_alaw_decode_table_matches_audioop(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype=np.int16)
    assert np.array_equal(decode_alaw(ALL_CODES), expected)
    assert np.array_equal(ALAW_TO_LINEAR, expected)


def test_ulaw_encoder_matches_audioop_for_every_int16(audioop) -> None:  # type: ignore[no-untyped-def]
    assert encode_ulaw(ALL_VALUES) == audioop.lin2ulaw(ALL_VALUES.tobytes(), 2)


def test_alaw_encoder_matches_audioop_for_every_int16(audioop) -> None:  # type: ignore[no-untyped-def]
    assert encode_alaw(ALL_VALUES) == audioop.lin2alaw(ALL_VALUES.tobytes(), 2)


def test_known_values() -> None:
    # G.711 anchors: µ-law 0xFF and A-law 0xD5 are the smallest positive steps.
    assert decode_ulaw(b"\xff\x7f\x00\x80").tolist() == [0, 0, -32124, 32124]
    assert decode_alaw(b"\xd5\x55\x2a\xaa").tolist() == [8, -8, -32256, 32256]
    assert encode_ulaw(np.array([0], dtype=np.int16)) == b"\xff"
    assert encode_alaw(np.array([0], dtype=np.int16)) == b"\xd5"


@given(st.binary(max_size=400))
def test_decode_then_encode_is_identity_on_codes(data: bytes) -> None:
    # Every code decodes to a value that encodes back to it, except µ-law's two zeros.
    assert encode_alaw(decode_alaw(data)) == data
    assert encode_ulaw(decode_ulaw(data)) == data.replace(b"\x7f", b"\xff")


def test_encoder_needs_int16() -> None:
    with pytest.raises(CodecError, match=r"G\.711 encoder needs int16 samples, not float64"):
        encode_ulaw(np.zeros(4))


def test_decoders(speech_8k: np.ndarray) -> None:
    for decoder, encode in ((PcmuDecoder(), encode_ulaw), (PcmaDecoder(), encode_alaw)):
        assert (decoder.clock_rate, decoder.sample_rate) == (8000, 8000)
        decoded = np.concatenate(
            [decoder.decode(encode(speech_8k[i : i + 160])) for i in range(0, len(speech_8k), 160)]
        )
        assert decoded.dtype == np.int16
        assert np.corrcoef(decoded, speech_8k)[0, 1] > 0.999
        assert decoder.decode(b"").size == 0
        assert decoder.conceal(160).tolist() == [0] * 160
        assert decoder.conceal(-5).size == 0


def test_decodes_ffmpeg_rtp_capture() -> None:
    packets = [RtpPacket.parse(d) for k, d in load_capture("ffmpeg-pcmu.txt") if k == "rtp"]
    decoder = PcmuDecoder()
    audio = np.concatenate([decoder.decode(p.payload) for p in packets])
    assert audio.size == 75 * 160
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    assert 300 < rms < 10_000  # real speech, not silence or noise at full scale
