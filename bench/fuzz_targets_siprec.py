"""Fuzz targets for the SIPREC parsers, to be merged into ``bench/fuzz.py``.

Each target takes arbitrary bytes and returns None. The parser's own error type (`SdpError`,
`MetadataError`, `MultipartError`, `AnswerError`) is the expected way to reject input and is
swallowed; any other exception, or a failed consistency assertion, is a bug the fuzzer found.
Beyond "does not crash", the targets check what must hold for accepted input: an SDP body
re-parses to the same value after serialisation, an answer is well-formed SDP with one m-line
per offered one, and metadata merges with itself.

    TARGETS = {"sdp": ..., "metadata": ..., "multipart": ...}
"""

from __future__ import annotations

from collections.abc import Callable

from sipscribe.sip.sdp import SdpError, SessionDescription
from sipscribe.siprec.answer import AnswerError, build_answer
from sipscribe.siprec.metadata import MetadataError, merge_metadata, parse_metadata
from sipscribe.siprec.multipart import MultipartError, parse_recording_body
from sipscribe.siprec.roles import assign_roles
from sipscribe.siprec.vendors import extract_vendor_info


def _fixed_bytes(n: int) -> bytes:
    return bytes(n)


def fuzz_sdp(data: bytes) -> None:
    """Parse, round-trip, answer and assign roles to an arbitrary SDP body."""
    try:
        offer = SessionDescription.parse(data)
    except SdpError:
        return
    again = SessionDescription.parse(bytes(offer))
    assert again == offer, "SDP does not re-parse to the same value"
    try:
        answer = build_answer(
            offer,
            address="192.0.2.1",
            ports=range(40000, 65000, 2),
            session_id=1,
            random_bytes=_fixed_bytes,
        )
    except AnswerError:
        pass
    else:
        answered = SessionDescription.parse(bytes(answer))
        assert len(answered.media) == len(offer.media), "answer m-line count differs"
    assign_roles(offer, None)


def fuzz_metadata(data: bytes) -> None:
    """Parse arbitrary bytes as rs-metadata and exercise everything that reads the result."""
    try:
        meta = parse_metadata(data)
    except MetadataError:
        return
    merged = merge_metadata(meta, meta)
    for stream in merged.streams.values():
        merged.senders(stream.id)
    for extension in merged.extensions:
        extension.to_xml()
    extract_vendor_info({}, merged)


def fuzz_multipart(data: bytes) -> None:
    """First line: the Content-Type value; the rest: the body."""
    content_type, _, body = data.partition(b"\n")
    try:
        parse_recording_body(body, content_type.decode("latin-1"))
    except MultipartError:
        return


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sdp": fuzz_sdp,
    "metadata": fuzz_metadata,
    "multipart": fuzz_multipart,
}
