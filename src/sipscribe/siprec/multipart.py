"""Split a SIPREC INVITE body into its SDP offer and its rs-metadata (RFC 7866 §9, RFC 2046).

A recording client sends ``multipart/mixed`` with an ``application/sdp`` part and an
``application/rs-metadata+xml`` part (``Content-Disposition: recording-session``), or a bare
``application/sdp`` body when the metadata follows later (RFC 7866 §6.1.1).

Lenient in the ways real clients differ: quoted or bare ``boundary``, LF-only line endings,
whitespace after a delimiter (RFC 2046 transport padding), a preamble and an epilogue, folded
part headers, and a missing close delimiter (the rest of the body is the last part). Strict
where guessing would misread the call: no boundary, no delimiter, malformed part headers, no
SDP part. Everything raises `MultipartError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sipscribe.siprec.errors import MultipartError

__all__ = [
    "METADATA_TYPES",
    "BodyPart",
    "ContentType",
    "MultipartError",
    "RecordingBody",
    "parse_content_type",
    "parse_recording_body",
    "split_multipart",
]

# RFC 7865 registers application/rs-metadata+xml; drafts used application/rs-metadata.
METADATA_TYPES = frozenset({"application/rs-metadata+xml", "application/rs-metadata"})
_MAX_BOUNDARY = 200  # RFC 2046 says 70; leave room for sloppy clients, refuse absurd ones.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class ContentType:
    """A Content-Type value: ``type/subtype`` (lower-cased) and its parameters.

    Parameter names are lower-cased (they are case-insensitive, RFC 2045 §5.1); values are
    kept as sent, unquoted.
    """

    media_type: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def boundary(self) -> str | None:
        return self.params.get("boundary")


def parse_content_type(value: str) -> ContentType:
    """Parse ``type/subtype *(; name=value)``; values may be quoted-strings."""
    media_type, rest = _split_value(value)
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+", media_type):
        raise MultipartError(f"Content-Type {value.strip()[:60]!r} is not type/subtype")
    return ContentType(media_type, _parse_params(rest, value))


def _split_value(value: str) -> tuple[str, str]:
    head, _, rest = value.partition(";")
    return head.strip().lower(), rest


def _parse_params(text: str, whole: str) -> dict[str, str]:
    """``name=value`` pairs separated by ``;``; values are tokens or quoted-strings."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t;":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and text[j] not in "=;":
            j += 1
        name = text[i:j].strip().lower()
        if not name:
            raise MultipartError(f"header {whole.strip()[:60]!r} has an empty parameter name")
        if j >= n or text[j] == ";":
            params.setdefault(name, "")
            i = j
            continue
        j += 1
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == '"':
            chars: list[str] = []
            j += 1
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                chars.append(text[j])
                j += 1
            if j >= n:
                raise MultipartError(f"header {whole.strip()[:60]!r} has an unterminated quote")
            params.setdefault(name, "".join(chars))
            i = j + 1
        else:
            k = j
            while k < n and text[k] != ";":
                k += 1
            params.setdefault(name, text[j:k].strip())
            i = k
    return params


@dataclass(frozen=True)
class BodyPart:
    """One part of a multipart body: its headers (as sent, in order) and its bytes."""

    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header called `name` (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    @property
    def content_type(self) -> ContentType:
        """The part's Content-Type; RFC 2046 §5.1 defaults a part without one to text/plain."""
        value = self.header("Content-Type")
        return ContentType("text/plain") if value is None else parse_content_type(value)

    @property
    def disposition(self) -> str | None:
        """Content-Disposition type, lower-cased (``recording-session``, ``session``...)."""
        value = self.header("Content-Disposition")
        return None if value is None else _split_value(value)[0]

    @property
    def disposition_params(self) -> dict[str, str]:
        value = self.header("Content-Disposition")
        return {} if value is None else _parse_params(_split_value(value)[1], value)

    @property
    def content_id(self) -> str | None:
        """Content-ID without its angle brackets (RFC 2392), so ``cid:`` URIs can match it."""
        value = self.header("Content-ID")
        return None if value is None else value.strip().removeprefix("<").removesuffix(">")


def split_multipart(body: bytes, content_type: str | ContentType) -> tuple[BodyPart, ...]:
    """Split a multipart body by the boundary of its Content-Type.

    The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1), so a part's
    bytes are exactly what the sender put between the blank line and that CRLF.
    """
    ctype = (
        content_type
        if isinstance(content_type, ContentType)
        else (parse_content_type(content_type))
    )
    if not ctype.media_type.startswith("multipart/"):
        raise MultipartError(f"Content-Type {ctype.media_type} is not multipart")
    boundary = ctype.boundary
    if not boundary:
        raise MultipartError(f"{ctype.media_type} Content-Type has no boundary parameter")
    if len(boundary) > _MAX_BOUNDARY or any(c in boundary for c in "\r\n"):
        raise MultipartError(f"{ctype.media_type} boundary is not a valid boundary")
    try:
        marker = boundary.encode("ascii")
    except UnicodeEncodeError:
        raise MultipartError(f"{ctype.media_type} boundary is not ASCII") from None
    delimiter = re.compile(rb"(?:\A|\r?\n)--" + re.escape(marker) + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    matches = list(delimiter.finditer(body))
    if not matches:
        raise MultipartError(f"multipart body has no delimiter for boundary {boundary!r}")
    parts: list[BodyPart] = []
    for index, match in enumerate(matches):
        if match.group(1):  # close delimiter: what follows is the epilogue
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        parts.append(_parse_part(body[match.end() : end], len(parts) + 1))
    if not parts:
        raise MultipartError("multipart body has no parts")
    return tuple(parts)


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _parse_part(data: bytes, number: int) -> BodyPart:
    if data.startswith((b"\r\n", b"\n")):  # no headers at all
        return BodyPart((), data[2:] if data.startswith(b"\r\n") else data[1:])
    blank = _BLANK_LINE.search(data)
    head, body = (data[: blank.start()], data[blank.end() :]) if blank else (data, b"")
    headers: list[tuple[str, str]] = []
    for line in head.decode("iso-8859-1").replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and headers:  # RFC 5322 folding
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.fullmatch(name):
            raise MultipartError(f"multipart part {number} has a malformed header line")
        headers.append((name, value.strip()))
    return BodyPart(tuple(headers), body)


@dataclass(frozen=True)
class RecordingBody:
    """What a SIPREC INVITE (or re-INVITE/UPDATE) carries: the SDP and, maybe, the metadata."""

    sdp: bytes
    metadata: bytes | None = None
    parts: tuple[BodyPart, ...] = ()


def parse_recording_body(body: bytes, content_type: str | None) -> RecordingBody:
    """Find the SDP offer and the rs-metadata in a message body.

    `content_type` is the message's Content-Type header value. A bare ``application/sdp`` body
    gives ``metadata=None``. In a multipart body the first ``application/sdp`` part is the
    offer; the metadata part is the first rs-metadata part, preferring one whose disposition is
    ``recording-session`` (RFC 7866 §9.1).
    """
    if not content_type or not content_type.strip():
        raise MultipartError("body has no Content-Type")
    ctype = parse_content_type(content_type)
    if ctype.media_type == "application/sdp":
        if not body.strip():
            raise MultipartError("application/sdp body is empty")
        return RecordingBody(sdp=body)
    if not ctype.media_type.startswith("multipart/"):
        raise MultipartError(
            f"body type {ctype.media_type} is neither application/sdp nor multipart",
            status=415,
        )
    parts = split_multipart(body, ctype)
    sdp: bytes | None = None
    metadata: list[BodyPart] = []
    for part in parts:
        media_type = part.content_type.media_type
        if media_type == "application/sdp" and sdp is None:
            sdp = part.body
        elif media_type in METADATA_TYPES:
            metadata.append(part)
    if sdp is None:
        raise MultipartError("multipart body has no application/sdp part")
    if not sdp.strip():
        raise MultipartError("multipart application/sdp part is empty")
    chosen = next((p for p in metadata if p.disposition == "recording-session"), None)
    if chosen is None and metadata:
        chosen = metadata[0]
    return RecordingBody(sdp=sdp, metadata=None if chosen is None else chosen.body, parts=parts)
