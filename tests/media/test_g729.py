from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.codecs import g729
from sipscribe.media.codecs.g729 import Bcg729Encoder, G729Decoder, split_frames
from sipscribe.media.errors import CodecError
from tests.media.media_helpers import (
    aligned_correlation,
    envelope_correlation,
    spectral_correlation,
)

needs_bcg729 = pytest.mark.skipif(
    not g729.BCG729_AVAILABLE, reason="libbcg729-0 is not installed (apt-get install libbcg729-0)"
)


def test_split_frames() -> None:
    assert split_frames(bytes(20)) == ([bytes(10), bytes(10)], None)
    assert split_frames(bytes(10) + b"\x01\x02") == ([bytes(10)], b"\x01\x02")
    assert split_frames(b"\x01\x02") == ([], b"\x01\x02")
    assert split_frames(b"") == ([], None)
    with pytest.raises(CodecError) as info:
        split_frames(bytes(13))
    assert str(info.value) == (
        "G.729 payload length 13 is not 10-byte frames plus an optional 2-byte SID frame"
    )


@pytest.fixture(scope="module")
def speech_frames(speech_8k: np.ndarray) -> list[bytes]:
    if not g729.BCG729_AVAILABLE:
        pytest.skip("libbcg729-0 is not installed: no G.729 encoder to make test input")
    frames = Bcg729Encoder().encode(speech_8k)
    assert {len(f) for f in frames} == {10}
    return frames


@needs_bcg729
def test_round_trip_real_speech(speech_8k: np.ndarray, speech_frames: list[bytes]) -> None:
    decoder = G729Decoder()
    assert decoder.backend == "bcg729"
    # two frames per RTP packet (20 ms), as most senders pack them
    payloads = [b"".join(speech_frames[i : i + 2]) for i in range(0, len(speech_frames), 2)]
    decoded = np.concatenate([decoder.decode(p) for p in payloads])
    assert decoded.size == 80 * len(speech_frames)
    # G.729 is CELP at 8 kbit/s: it keeps what speech sounds like, not the waveform (sample
    # correlation is only ~0.45), so compare loudness envelopes and spectra after the 5 ms
    # look-ahead delay.
    _, lag = aligned_correlation(speech_8k, decoded, 80)
    assert lag == 40
    assert envelope_correlation(speech_8k, decoded, 8000, lag) >= 0.93
    assert spectral_correlation(speech_8k, decoded, 8000, lag) >= 0.8


@needs_bcg729
def test_bcg729_and_ffmpeg_decoders_agree(speech_frames: list[bytes]) -> None:
    """Two independent implementations decoding the same bitstream must give the same audio."""
    bcg729 = G729Decoder(backend="bcg729")
    pyav = G729Decoder(backend="pyav")
    ours = np.concatenate([bcg729.decode(f) for f in speech_frames[:300]])
    theirs = np.concatenate([pyav.decode(f) for f in speech_frames[:300]])
    assert ours.shape == theirs.shape
    assert np.corrcoef(ours, theirs)[0, 1] >= 0.99


@needs_bcg729
def test_annex_b_sid_frames_give_comfort_noise(speech_8k: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    quiet = (rng.standard_normal(8000 * 2) * 30).astype(np.int16)  # 2 s of faint noise
    frames = Bcg729Encoder(vad=True).encode(np.concatenate([speech_8k[:16000], quiet]))
    sizes = {len(f) for f in frames}
    assert sizes == {10, 2, 0}  # speech, SID, and untransmitted frames
    decoder = G729Decoder()
    out = []
    for frame in frames:
        if frame:
            out.append(decoder.decode(frame))
        else:  # nothing was sent: the jitter buffer reports a DTX gap for it
            out.append(decoder.conceal(80))
    tail = np.concatenate(out)[-8000:].astype(np.float64)
    rms = np.sqrt(np.mean(tail**2))
    assert 15 < rms < 60  # comfort noise near the input level (RMS 30): not silence, not speech


@needs_bcg729
def test_sid_frame_after_speech_in_one_payload(speech_frames: list[bytes]) -> None:
    decoder = G729Decoder()
    out = decoder.decode(speech_frames[10] + speech_frames[11] + b"\x2a\x80")
    assert out.size == 240


@needs_bcg729
def test_conceal_uses_plc_then_stays_bounded(speech_frames: list[bytes]) -> None:
    decoder = G729Decoder()
    for frame in speech_frames[:50]:
        decoder.decode(frame)
    plc = decoder.conceal(160)
    assert plc.size == 160 and np.abs(plc).max() > 0  # frame-erasure concealment, not zeros
    assert decoder.conceal(125).size == 125
    huge = decoder.conceal(8000 * 60)  # a minute: decoder-generated up to 5 s, then zeros
    assert huge.size == 8000 * 60 and not huge[-8000:].any()
    assert decoder.conceal(0).size == 0


def test_pyav_backend_replaces_sid_with_silence() -> None:
    decoder = G729Decoder("G729A", backend="pyav")
    assert decoder.name == "G729A"
    assert decoder.decode(b"\x2a\x80").tolist() == [0] * 80
    assert decoder.decode(b"").size == 0
    assert decoder.conceal(80).tolist() == [0] * 80


@pytest.mark.parametrize("backend", ["bcg729", "pyav"])
@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=64))
def test_any_payload_decodes_or_raises_codec_error(backend: str, payload: bytes) -> None:
    if backend == "bcg729" and not g729.BCG729_AVAILABLE:
        return
    decoder = G729Decoder(backend=backend)  # type: ignore[arg-type]
    try:
        out = decoder.decode(payload)
    except CodecError:
        assert len(payload) % 10 not in (0, 2)
        return
    assert out.dtype == np.int16 and out.size == 80 * (
        len(payload) // 10 + (len(payload) % 10 == 2)
    )
