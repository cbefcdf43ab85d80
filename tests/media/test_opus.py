from __future__ import annotations

import itertools

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.codecs import opus
from sipscribe.media.codecs.opus import OpusDecoder
from sipscribe.media.errors import CodecError, UnsupportedCodec
from sipscribe.media.rtp import RtpPacket
from tests.media.media_helpers import (
    aligned_correlation,
    envelope_correlation,
    ffmpeg_encode,
    load_capture,
    spectral_correlation,
)

needs_libopus = pytest.mark.skipif(
    not opus.LIBOPUS_AVAILABLE, reason="libopus0 is not installed (apt-get install libopus0)"
)


@pytest.fixture(scope="module")
def speech_48k(speech_16k: np.ndarray) -> np.ndarray:
    return soxr.resample(speech_16k, 16000, 48000).astype(np.int16)


@pytest.fixture(scope="module")
def opus_payloads(speech_48k: np.ndarray) -> list[bytes]:
    return ffmpeg_encode("libopus", speech_48k, 48000, 960, b="24000", application="voip")


@needs_libopus
def test_decodes_real_speech_at_16k(speech_16k: np.ndarray, opus_payloads: list[bytes]) -> None:
    decoder = OpusDecoder()
    assert (decoder.backend, decoder.clock_rate, decoder.sample_rate) == ("libopus", 48000, 16000)
    decoded = np.concatenate([decoder.decode(p) for p in opus_payloads])
    assert decoded.dtype == np.int16
    assert decoded.size == 320 * len(opus_payloads)  # 20 ms at 16 kHz per packet, no resampling
    # Opus (SILK/CELT) is perceptual: the waveform correlates only ~0.83, so compare what is
    # heard (loudness envelope, spectrum) once aligned on the encoder's 6.5 ms pre-skip.
    _, lag = aligned_correlation(speech_16k, decoded, 400)
    assert abs(lag - 104) <= 4
    assert envelope_correlation(speech_16k, decoded, 16000, lag) >= 0.95
    assert spectral_correlation(speech_16k, decoded, 16000, lag) >= 0.9


@needs_libopus
def test_libopus_and_ffmpeg_agree_at_48k(opus_payloads: list[bytes]) -> None:
    ours = OpusDecoder(48000, backend="libopus")
    theirs = OpusDecoder(backend="pyav")
    assert theirs.sample_rate == 48000
    a = np.concatenate([ours.decode(p) for p in opus_payloads[:200]])
    b = np.concatenate([theirs.decode(p) for p in opus_payloads[:200]])
    n = min(a.size, b.size)
    assert np.corrcoef(a[:n], b[:n])[0, 1] >= 0.99


@needs_libopus
def test_stereo_stream_is_downmixed(speech_48k: np.ndarray) -> None:
    import av

    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = 48000
    ctx.format = "s16"
    ctx.layout = "stereo"
    ctx.open()
    left = speech_48k[: 48000 * 2]
    stereo = np.stack([left, (left // 2).astype(np.int16)], axis=1).reshape(1, -1)
    payloads = []
    for i in range(0, left.size, 960):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo[:, 2 * i : 2 * (i + 960)]), format="s16", layout="stereo"
        )
        frame.sample_rate = 48000
        payloads += [bytes(p) for p in ctx.encode(frame)]
    decoder = OpusDecoder(16000)
    decoded = np.concatenate([decoder.decode(p) for p in payloads])
    reference = soxr.resample(left, 48000, 16000)
    _, lag = aligned_correlation(reference, decoded, 400)
    assert envelope_correlation(reference, decoded, 16000, lag) >= 0.95


@needs_libopus
def test_conceal_with_plc_then_silence(opus_payloads: list[bytes]) -> None:
    decoder = OpusDecoder()
    for p in opus_payloads[:60]:
        decoder.decode(p)
    plc = decoder.conceal(320)
    assert plc.size == 320 and np.abs(plc).max() > 0  # libopus PLC, not zeros
    assert decoder.conceal(100).size == 100  # not a multiple of 2.5 ms
    long_gap = decoder.conceal(16000 * 10)
    assert long_gap.size == 160_000 and not long_gap[3200:].any()  # PLC for 200 ms, then zeros
    assert decoder.decode(opus_payloads[61]).size == 320  # and decoding carries on


@needs_libopus
def test_decodes_ffmpeg_rtp_capture() -> None:
    packets = [RtpPacket.parse(d) for k, d in load_capture("ffmpeg-opus.txt") if k == "rtp"]
    assert {p.payload_type for p in packets} == {97}
    assert {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)} == {
        960
    }
    decoder = OpusDecoder()
    audio = np.concatenate([decoder.decode(p.payload) for p in packets])
    assert audio.size == 320 * len(packets)
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 300


def test_invalid_packets_raise_codec_error() -> None:
    decoder = OpusDecoder()
    with pytest.raises(CodecError, match=r"^Opus payload is empty$"):
        decoder.decode(b"")
    with pytest.raises(CodecError, match=r"^Opus payload rejected by (libopus|FFmpeg): "):
        decoder.decode(b"\xff\xff\xff")  # code-3 packet with an impossible frame count


def test_unsupported_rates_and_backends() -> None:
    with pytest.raises(UnsupportedCodec, match="Opus cannot decode at 44100 Hz"):
        OpusDecoder(44100, backend="libopus")
    with pytest.raises(UnsupportedCodec, match="Opus backend 'x' is unknown"):
        OpusDecoder(backend="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["libopus", "pyav"])
@settings(max_examples=80, deadline=None)
@given(payload=st.binary(max_size=200))
def test_any_payload_decodes_or_raises_codec_error(backend: str, payload: bytes) -> None:
    if backend == "libopus" and not opus.LIBOPUS_AVAILABLE:
        return
    decoder = OpusDecoder(backend=backend)  # type: ignore[arg-type]
    try:
        out = decoder.decode(payload)
    except CodecError:
        return
    assert out.dtype == np.int16
