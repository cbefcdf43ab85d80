from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.codecs.g722 import G722Decoder
from sipscribe.media.errors import CodecError
from tests.media.media_helpers import aligned_correlation, ffmpeg_encode


def test_rates() -> None:
    decoder = G722Decoder()
    assert (decoder.name, decoder.clock_rate, decoder.sample_rate) == ("G722", 8000, 16000)


def test_round_trip_real_speech(speech_16k: np.ndarray) -> None:
    payloads = ffmpeg_encode("g722", speech_16k, 16000, 320)
    assert {len(p) for p in payloads} == {160}  # 20 ms = 160 bytes at 64 kbit/s
    decoder = G722Decoder()
    decoded = np.concatenate([decoder.decode(p) for p in payloads])
    assert decoded.dtype == np.int16 and decoded.size == 320 * len(payloads)
    # G.722 is a waveform codec (SB-ADPCM): it tracks the signal closely, after its delay.
    correlation, lag = aligned_correlation(speech_16k, decoded, 100)
    assert correlation >= 0.99
    assert lag == 22  # the QMF filter bank's delay at 16 kHz


def test_empty_payload_is_refused_and_the_decoder_keeps_working(speech_16k: np.ndarray) -> None:
    decoder = G722Decoder()
    payload = ffmpeg_encode("g722", speech_16k[:3200], 16000, 320)[3]
    first = decoder.decode(payload)
    try:
        decoder.decode(b"")
    except CodecError as exc:
        assert str(exc) == "G.722 payload is empty"
    else:  # pragma: no cover
        raise AssertionError("empty payload accepted")
    # FFmpeg would have gone into end-of-stream on an empty packet; we never send one.
    assert decoder.decode(payload).size == first.size == 320


def test_conceal_is_silence() -> None:
    assert G722Decoder().conceal(640).tolist() == [0] * 640


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=400))
def test_any_bytes_decode(payload: bytes) -> None:
    out = G722Decoder().decode(payload)
    assert out.dtype == np.int16 and out.size == 2 * len(payload)
