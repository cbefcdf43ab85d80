"""get_decoder, the Decoder protocol and the shared PyAV plumbing (codecs/__init__, base)."""

from __future__ import annotations

import numpy as np
import pytest

from sipscribe.media.codecs import (
    STATIC_PAYLOAD_TYPES,
    ComfortNoiseDecoder,
    Decoder,
    G722Decoder,
    G729Decoder,
    OpusDecoder,
    PcmaDecoder,
    PcmuDecoder,
    get_decoder,
    silence,
)
from sipscribe.media.codecs.base import PyAVDecoder
from sipscribe.media.errors import CodecError, MediaError, UnsupportedCodec


@pytest.mark.parametrize(
    ("rtpmap", "cls", "sample_rate"),
    [
        (("PCMU", 8000), PcmuDecoder, 8000),
        (("pcmu", 8000), PcmuDecoder, 8000),
        (("PCMA", 8000, 1), PcmaDecoder, 8000),
        (("G722", 8000), G722Decoder, 16000),
        (("G729", 8000, 1, "annexb=no"), G729Decoder, 8000),
        (("g729a", 8000), G729Decoder, 8000),
        (("opus", 48000, 2, "useinbandfec=1; stereo=0"), OpusDecoder, None),
        (("OPUS", 48000), OpusDecoder, None),
        (("CN", 8000), ComfortNoiseDecoder, 8000),
        (("CN", 16000), ComfortNoiseDecoder, 16000),
    ],
)
def test_get_decoder(rtpmap: tuple, cls: type, sample_rate: int | None) -> None:
    decoder = get_decoder(*rtpmap)
    assert isinstance(decoder, cls)
    assert isinstance(decoder, Decoder)
    if sample_rate is not None:
        assert decoder.sample_rate == sample_rate
    assert decoder.clock_rate == rtpmap[1]


def test_opus_output_rate_can_be_chosen() -> None:
    decoder = get_decoder("opus", 48000, 2, sample_rate=24000)
    if getattr(decoder, "backend", None) == "libopus":
        assert decoder.sample_rate == 24000
    assert get_decoder("CN", 8000, sample_rate=16000).sample_rate == 16000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("telephone-event", 8000), "telephone-event is not audio: route it to DtmfReceiver"),
        (("PCMU", 16000), "codec PCMU/16000 is not supported: PCMU has an 8000 Hz clock"),
        (("G722", 16000), "codec G722/16000 is not supported: G722 has an 8000 Hz clock"),
        (("PCMA", 8000, 2), "codec PCMA/8000/2 is not supported: only mono"),
        (("opus", 16000), "codec opus/16000 is not valid Opus (RFC 7587: opus/48000/2)"),
        (("AMR-WB", 16000), "codec AMR-WB/16000 is not supported"),
        (("G729D", 8000), "codec G729D/8000 is not supported"),
        (("L16", 8000), "codec L16/8000 is not supported"),
    ],
)
def test_unsupported(args: tuple, message: str) -> None:
    with pytest.raises(UnsupportedCodec) as info:
        get_decoder(*args)
    assert str(info.value) == message
    assert isinstance(info.value, MediaError) and isinstance(info.value, ValueError)


def test_static_payload_types_all_resolve() -> None:
    for pt, (name, rate, channels) in STATIC_PAYLOAD_TYPES.items():
        assert get_decoder(name, rate, channels).clock_rate == rate, pt


def test_silence() -> None:
    assert silence(3).tolist() == [0, 0, 0] and silence(3).dtype == np.int16
    assert silence(-1).size == 0


def test_pyav_decoder_maps_every_failure_to_codec_error() -> None:
    decoder = PyAVDecoder("libopus", 48000, "Opus")
    with pytest.raises(CodecError, match=r"^Opus payload is empty$"):
        decoder.decode(b"")
    with pytest.raises(CodecError, match=r"^Opus payload rejected by FFmpeg: "):
        decoder.decode(b"\xff\xff\xff")
    with pytest.raises(UnsupportedCodec, match=r"^no-such-codec decoder is not available in PyAV"):
        PyAVDecoder("no-such-codec", 8000, "no-such-codec")
