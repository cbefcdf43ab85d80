"""Audio decoders behind one `Decoder` interface, chosen from the SDP by `get_decoder`.

``get_decoder(name, clock_rate, channels, fmtp)`` takes what an ``a=rtpmap`` line says (or
`STATIC_PAYLOAD_TYPES` for a static payload type offered without one) and returns a fresh
decoder for one stream. Supported: PCMU, PCMA (numpy tables), G722 (PyAV), G729/G729A with
Annex B (bcg729 or PyAV), opus (libopus or PyAV), CN (comfort noise). ``telephone-event`` is
not audio and is refused here: the edge routes it to `media.dtmf.DtmfReceiver`.

How the edge uses a stream's decoders: decode each released packet with the decoder of its
payload type; fill each `jitterbuffer.Gap` with ``conceal()`` of the decoder used last (so a
silence after a CN packet is filled with comfort noise, a lost G.729 or Opus frame with the
codec's PLC), scaled with ``gap.output_samples(clock_rate=..., sample_rate=...)``; on a
`CodecError`, count it and conceal the packet's duration instead.
"""

from __future__ import annotations

from .base import PCM, CodecError, Decoder, UnsupportedCodec, silence
from .cn import ComfortNoiseDecoder
from .g711 import PcmaDecoder, PcmuDecoder, encode_alaw, encode_ulaw
from .g722 import G722Decoder
from .g729 import G729Decoder
from .opus import OpusDecoder

__all__ = [
    "PCM",
    "STATIC_PAYLOAD_TYPES",
    "CodecError",
    "ComfortNoiseDecoder",
    "Decoder",
    "G722Decoder",
    "G729Decoder",
    "OpusDecoder",
    "PcmaDecoder",
    "PcmuDecoder",
    "UnsupportedCodec",
    "encode_alaw",
    "encode_ulaw",
    "get_decoder",
    "silence",
]

#: Static audio payload types we decode (RFC 3551 §6): PT → (encoding name, clock, channels).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, 1),
    18: ("G729", 8000, 1),
}


def get_decoder(
    encoding_name: str,
    clock_rate: int,
    channels: int = 1,
    fmtp: str | None = None,
    *,
    sample_rate: int | None = None,
) -> Decoder:
    """A new decoder for an rtpmap ``encoding_name/clock_rate[/channels]`` (case-insensitive).

    ``sample_rate`` asks for an output rate where the decoder can produce it natively (Opus
    with libopus: 8/12/16/24/48 kHz, default 16 kHz; CN: any, default its clock rate) and is
    ignored elsewhere: always read ``decoder.sample_rate``. ``fmtp`` is accepted for
    completeness; no supported codec needs it to decode (G.729 ``annexb=no`` only means no
    SID frames will come). Raises `UnsupportedCodec`.
    """
    del fmtp
    name = encoding_name.strip().upper()
    label = f"{encoding_name}/{clock_rate}" + (f"/{channels}" if channels != 1 else "")
    if name == "TELEPHONE-EVENT":
        raise UnsupportedCodec("telephone-event is not audio: route it to DtmfReceiver")
    if name == "OPUS":
        if clock_rate != 48000 or channels not in (1, 2):
            raise UnsupportedCodec(f"codec {label} is not valid Opus (RFC 7587: opus/48000/2)")
        return OpusDecoder(sample_rate or 16000)
    if name == "CN":
        if channels != 1 or clock_rate <= 0:
            raise UnsupportedCodec(f"codec {label} is not supported")
        return ComfortNoiseDecoder(clock_rate, sample_rate)
    if channels != 1:
        raise UnsupportedCodec(f"codec {label} is not supported: only mono")
    if clock_rate != 8000 and name in ("PCMU", "PCMA", "G722", "G729", "G729A"):
        raise UnsupportedCodec(f"codec {label} is not supported: {name} has an 8000 Hz clock")
    if name == "PCMU":
        return PcmuDecoder()
    if name == "PCMA":
        return PcmaDecoder()
    if name == "G722":
        return G722Decoder()
    if name in ("G729", "G729A"):
        return G729Decoder(name)
    raise UnsupportedCodec(f"codec {label} is not supported")
