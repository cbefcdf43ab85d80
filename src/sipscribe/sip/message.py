"""SIP requests and responses: bytes in, typed values out, and back.

:func:`parse_message` turns one message's bytes into a :class:`Request` or
:class:`Response`; ``bytes(message)`` writes it back. Header fields are kept
as text in a :class:`Headers` list (canonical names, folding undone), so
unknown headers and unusual spacing survive; the values the SIP core acts on
are exposed as typed properties (``message.via``, ``message.cseq`` …) and are
all checked while parsing, so a message that parses is a message we can use.

What the parser enforces, and the answer each fault earns (RFC 3261 §21.4):

* size limits (:class:`ParseLimits`): 413 for an oversized message, 414 for an
  overlong Request-Line, 400 for too many or too long header lines;
* a ``SIP/2.0`` version: 505 otherwise (RFC 4475 badvers);
* a sip/sips/tel Request-URI: 416 otherwise (RFC 4475 novelsc, unkscm);
* one Via at least, one each of From, To, Call-ID, CSeq, at most one of the
  other single-valued headers, CSeq method equal to the request method, and a
  Content-Length that matches the transport (RFC 3261 §18.3): 400 otherwise.

Content-Length: on a datagram it may be absent (the body is the rest of the
datagram) and extra octets after the body are ignored (RFC 4475 dblreq); a
value larger than what is left is an error (clerr). On a stream it is
mandatory — :mod:`sipscribe.sip.framing` cuts the stream by it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.headers import (
    LIST_HEADERS,
    SINGLE_HEADERS,
    CSeq,
    MediaType,
    MinSE,
    NameAddr,
    Reason,
    RetryAfter,
    SessionExpires,
    Via,
    Warning,
    Wildcard,
    canonical_name,
    parse_contacts,
    parse_max_forwards,
    parse_option_tags,
    quote_string,
    split_header_values,
)
from sipscribe.sip.uri import SipUri, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "REASON_PHRASES",
    "Headers",
    "Message",
    "ParseLimits",
    "Request",
    "Response",
    "make_error_response",
    "make_response",
    "parse_message",
]

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION_RE = re.compile(r"SIP/([0-9]+)\.([0-9]+)", re.IGNORECASE)
_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")

#: RFC 3261 §21 and common extensions; used when a response is built without a reason.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on what a peer can make us buffer and scan.

    Defaults fit any sane SIPREC INVITE (multipart SDP + metadata is a few KiB)
    while capping the memory one connection or datagram can cost.
    """

    max_message_size: int = 64 * 1024
    max_headers: int = 256
    max_line_length: int = 8 * 1024


DEFAULT_LIMITS = ParseLimits()


class Headers:
    """An immutable, ordered list of ``(name, value)`` header fields.

    Names are stored canonically (``v`` and ``VIA`` become ``Via``) and looked
    up case-insensitively; values are single-line text. Editing methods return
    a new :class:`Headers`.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        checked: list[tuple[str, str]] = []
        for name, value in items:
            if _TOKEN_RE.fullmatch(name) is None:
                raise ValueError(f"header name {name!r} is not a token")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} value must not contain CR or LF")
            checked.append((canonical_name(name), value))
        self._items: tuple[tuple[str, str], ...] = tuple(checked)

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...]) -> Headers:
        headers = cls.__new__(cls)
        headers._items = items
        return headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name).lower()
        return any(n.lower() == key for n, _ in self._items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        key = canonical_name(name).lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every field value of `name`, one per header line, in order."""
        key = canonical_name(name).lower()
        return [v for n, v in self._items if n.lower() == key]

    def values(self, name: str) -> list[str]:
        """Like :meth:`get_all`, with list headers split at their commas."""
        canonical = canonical_name(name)
        fields = self.get_all(canonical)
        if canonical not in LIST_HEADERS:
            return fields
        return [item for value in fields for item in split_header_values(value, canonical)]

    def add(self, name: str, value: str) -> Headers:
        """A copy with a field appended at the end."""
        return Headers([*self._items, (name, value)])

    def add_first(self, name: str, value: str) -> Headers:
        """A copy with a field inserted before the first field of the same name
        (or at the top): how a new Via or Route goes on."""
        key = canonical_name(name).lower()
        items = list(self._items)
        index = next((i for i, (n, _) in enumerate(items) if n.lower() == key), 0)
        items.insert(index, (name, value))
        return Headers(items)

    def set(self, name: str, value: str) -> Headers:
        """A copy where `name` has exactly this one value, kept at its first position."""
        key = canonical_name(name).lower()
        items: list[tuple[str, str]] = []
        done = False
        for n, v in self._items:
            if n.lower() == key:
                if not done:
                    items.append((n, value))
                    done = True
            else:
                items.append((n, v))
        if not done:
            items.append((name, value))
        return Headers(items)

    def remove(self, name: str) -> Headers:
        key = canonical_name(name).lower()
        return Headers._trusted(tuple((n, v) for n, v in self._items if n.lower() != key))


class _MessageBase:
    """Typed header accessors shared by requests and responses.

    Each raises :class:`SipParseError` if its header is malformed; the parser
    calls them all once, so for a parsed message they cannot fail.
    """

    headers: Headers
    body: bytes

    def _single(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"{type(self).__name__} is missing the {name} header")
        return value

    @cached_property
    def via(self) -> tuple[Via, ...]:
        out = []
        for item in self.headers.values("Via"):
            if not item:
                raise SipParseError("Via has an empty value")
            out.append(Via.parse(item))
        if not out:
            raise SipParseError(f"{type(self).__name__} is missing the Via header")
        return tuple(out)

    @property
    def top_via(self) -> Via:
        return self.via[0]

    @cached_property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._single("From"), header="From")

    @cached_property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._single("To"), header="To")

    @cached_property
    def call_id(self) -> str:
        value = self._single("Call-ID").strip()
        if not value or any(c.isspace() for c in value):
            raise SipParseError(f"Call-ID {value!r} is not valid")
        return value

    @cached_property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._single("CSeq"))

    @cached_property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else parse_max_forwards(value)

    @cached_property
    def contacts(self) -> tuple[NameAddr, ...] | Wildcard:
        """Contact values, ``()`` if none, or :data:`~headers.WILDCARD`."""
        values = self.headers.get_all("Contact")
        return parse_contacts(values) if values else ()

    def _name_addrs(self, name: str) -> tuple[NameAddr, ...]:
        out = []
        for item in self.headers.values(name):
            if not item:
                raise SipParseError(f"{name} has an empty value")
            out.append(NameAddr.parse(item, header=name))
        return tuple(out)

    @cached_property
    def route(self) -> tuple[NameAddr, ...]:
        return self._name_addrs("Route")

    @cached_property
    def record_route(self) -> tuple[NameAddr, ...]:
        return self._name_addrs("Record-Route")

    @cached_property
    def require(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.get_all("Require"), "Require")

    @cached_property
    def proxy_require(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.get_all("Proxy-Require"), "Proxy-Require")

    @cached_property
    def supported(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.get_all("Supported"), "Supported")

    @cached_property
    def unsupported(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.get_all("Unsupported"), "Unsupported")

    @cached_property
    def allow(self) -> tuple[str, ...]:
        return parse_option_tags(self.headers.get_all("Allow"), "Allow")

    @cached_property
    def session_expires(self) -> SessionExpires | None:
        value = self.headers.get("Session-Expires")
        return None if value is None else SessionExpires.parse(value)

    @cached_property
    def min_se(self) -> MinSE | None:
        value = self.headers.get("Min-SE")
        return None if value is None else MinSE.parse(value)

    @cached_property
    def content_type(self) -> MediaType | None:
        value = self.headers.get("Content-Type")
        return None if value is None else MediaType.parse(value)

    @property
    def warnings(self) -> tuple[Warning, ...]:
        return tuple(Warning.parse(v) for v in self.headers.values("Warning"))

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(Reason.parse(v) for v in self.headers.values("Reason"))

    @property
    def retry_after(self) -> RetryAfter | None:
        value = self.headers.get("Retry-After")
        return None if value is None else RetryAfter.parse(value)

    def _validate(self) -> None:
        """Check every header the SIP core relies on (see module docstring)."""
        seen: set[str] = set()
        for name, _ in self.headers:
            if name in SINGLE_HEADERS:
                if name in seen:
                    raise SipParseError(f"{type(self).__name__} has more than one {name} header")
                seen.add(name)
        self.via  # noqa: B018 - parsed for validation
        self.from_  # noqa: B018
        self.to  # noqa: B018
        self.call_id  # noqa: B018
        self.cseq  # noqa: B018
        self.max_forwards  # noqa: B018
        self.contacts  # noqa: B018
        self.route  # noqa: B018
        self.record_route  # noqa: B018
        self.require  # noqa: B018
        self.proxy_require  # noqa: B018
        self.supported  # noqa: B018
        self.session_expires  # noqa: B018
        self.min_se  # noqa: B018
        self.content_type  # noqa: B018

    def _encode(self, start_line: str) -> bytes:
        out = [start_line, "\r\n"]
        length_written = False
        for name, value in self.headers:
            if name == "Content-Length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            out += [name, ": ", value, "\r\n"]
        if not length_written:
            out += ["Content-Length: ", str(len(self.body)), "\r\n"]
        out.append("\r\n")
        return "".join(out).encode("utf-8") + self.body


@dataclass(frozen=True)
class Request(_MessageBase):
    """A SIP request. ``bytes(request)`` serialises it, Content-Length included."""

    method: str
    uri: SipUri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @classmethod
    def parse(
        cls, data: bytes, *, limits: ParseLimits = DEFAULT_LIMITS, stream: bool = False
    ) -> Request:
        message = parse_message(data, limits=limits, stream=stream)
        if not isinstance(message, Request):
            raise SipParseError("expected a request, got a response")
        return message

    def __bytes__(self) -> bytes:
        return self._encode(f"{self.method} {self.uri} SIP/2.0")


@dataclass(frozen=True)
class Response(_MessageBase):
    """A SIP response. :func:`make_response` fills in the standard reason phrase."""

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @classmethod
    def parse(
        cls, data: bytes, *, limits: ParseLimits = DEFAULT_LIMITS, stream: bool = False
    ) -> Response:
        message = parse_message(data, limits=limits, stream=stream)
        if not isinstance(message, Response):
            raise SipParseError("expected a response, got a request")
        return message

    def __bytes__(self) -> bytes:
        return self._encode(f"SIP/2.0 {self.status} {self.reason}")

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


Message = Request | Response


# --- parsing -----------------------------------------------------------------------------


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError(f"{what} is not valid UTF-8") from None


def _check_version(text: str) -> None:
    match = _VERSION_RE.fullmatch(text)
    if match is None:
        raise SipParseError(f"SIP version {text[:20]!r} is not valid")
    if (int(match[1]), int(match[2])) != (2, 0):
        raise SipParseError(f"SIP version {text} is not supported", status=505)


def _parse_request_line(line: str) -> tuple[str, SipUri]:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            "Request-Line is malformed (expected 'Method SP Request-URI SP SIP/2.0')"
        )
    method, uri_text, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        raise SipParseError(f"method {method[:40]!r} is not a token")
    _check_version(version)
    try:
        uri = parse_uri(uri_text)
    except SipParseError as exc:
        raise SipParseError(f"Request-URI is not valid: {exc.reason}") from None
    if not isinstance(uri, SipUri):
        raise SipParseError(f"Request-URI scheme {uri.scheme!r} is not supported", status=416)
    if uri.headers:
        raise SipParseError("Request-URI must not contain headers")
    return method, uri


def _parse_status_line(line: str) -> tuple[int, str]:
    version, _, rest = line.partition(" ")
    _check_version(version)
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not code.isascii() or not code.isdigit() or not 100 <= int(code) <= 699:
        raise SipParseError(f"status code {code[:20]!r} is not valid")
    return int(code), reason


def _split_head(data: bytes, limits: ParseLimits) -> tuple[str, list[tuple[str, str]], bytes]:
    """Split a message into start line, unfolded header fields and the rest."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise SipParseError("message has no empty line ending the header section")
    head, rest = data[:end], data[end + 4 :]
    lines = head.split(b"\r\n")
    start = lines[0]
    if len(start) > limits.max_line_length:
        status = 400 if start.startswith(b"SIP/") else 414
        raise SipParseError(f"start line exceeds {limits.max_line_length} bytes", status=status)
    fields: list[tuple[str, str]] = []
    current: bytearray | None = None
    raw_fields: list[bytes] = []
    for line in lines[1:]:
        if len(line) > limits.max_line_length:
            raise SipParseError(f"header line exceeds {limits.max_line_length} bytes")
        if line[:1] in (b" ", b"\t"):
            if current is None:
                raise SipParseError("header section starts with a continuation line")
            current += b"\r\n" + line
            continue
        if current is not None:
            raw_fields.append(bytes(current))
        current = bytearray(line)
    if current is not None:
        raw_fields.append(bytes(current))
    if len(raw_fields) > limits.max_headers:
        raise SipParseError(f"message has more than {limits.max_headers} header fields")
    for raw in raw_fields:
        if b"\r" in raw.replace(b"\r\n", b"") or b"\n" in raw.replace(b"\r\n", b""):
            raise SipParseError("header section contains a bare CR or LF")
        name_raw, colon, value_raw = raw.partition(b":")
        name = _decode(name_raw, "header name").rstrip(" \t")
        if not colon or _TOKEN_RE.fullmatch(name) is None:
            shown = name_raw[:40].decode("utf-8", "replace")
            raise SipParseError(f"header line {shown!r} has no valid name and colon")
        value = _FOLD_RE.sub(" ", _decode(value_raw, f"{name} header")).strip(" \t")
        fields.append((canonical_name(name), value))
    if b"\r" in start or b"\n" in start:
        raise SipParseError("start line contains a bare CR or LF")
    return _decode(start, "start line"), fields, rest


def _content_length(headers: Headers, limits: ParseLimits) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError("message has more than one Content-Length header")
    text = values[0].strip()
    if not text.isascii() or not text.isdigit():
        raise SipParseError(f"Content-Length {text[:20]!r} is not a number")
    length = int(text)
    if length > limits.max_message_size:
        raise SipParseError(
            f"Content-Length {length} exceeds {limits.max_message_size} bytes", status=413
        )
    return length


def parse_message(
    data: bytes, *, limits: ParseLimits = DEFAULT_LIMITS, stream: bool = False
) -> Request | Response:
    """Parse one SIP message.

    `stream` says the bytes came from TCP/TLS, already cut to exactly one
    message by :class:`~sipscribe.sip.framing.StreamFramer`: Content-Length is
    then mandatory and must cover the rest. Otherwise `data` is one datagram.
    Raises :class:`SipParseError` — and nothing else — for any bad input.
    """
    if len(data) > limits.max_message_size:
        raise SipParseError(f"message exceeds {limits.max_message_size} bytes", status=413)
    data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: ignore CRLFs before the start line
    start, fields, rest = _split_head(data, limits)
    headers = Headers._trusted(tuple(fields))
    is_response = start[:4].upper() == "SIP/"
    if is_response:
        status, reason = _parse_status_line(start)
    else:
        method, uri = _parse_request_line(start)
    length = _content_length(headers, limits)
    if length is None:
        if stream:
            raise SipParseError("Content-Length is required on stream transports")
        body = rest
    elif length > len(rest):
        where = "stream message" if stream else "datagram"
        raise SipParseError(
            f"Content-Length {length} exceeds the {len(rest)} bytes left in the {where}"
        )
    elif stream and length < len(rest):
        raise SipParseError(f"stream message has {len(rest) - length} bytes after its body")
    else:
        body = rest[:length]
    message: Request | Response
    if is_response:
        message = Response(status=status, reason=reason, headers=headers, body=body)
    else:
        message = Request(method=method, uri=uri, headers=headers, body=body)
    message._validate()
    if isinstance(message, Request) and message.cseq.method != message.method:
        raise SipParseError(
            f"CSeq method {message.cseq.method} does not match request method {message.method}"
        )
    return message


# --- building responses ---------------------------------------------------------------------


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response to `request` as RFC 3261 §8.2.6 requires.

    Via (all, in order), From, To, Call-ID and CSeq are copied; `to_tag` is
    added to To unless it already has one (never on 100, §8.2.6.2); a 100
    echoes Timestamp (§8.2.6.1). `headers` are appended after those.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} is not a SIP status code")
    fields: list[tuple[str, str]] = [("Via", v) for v in request.headers.get_all("Via")]
    fields.append(("From", request._single("From")))
    to_value = request._single("To")
    if to_tag is not None and status != 100 and request.to.tag is None:
        if _TOKEN_RE.fullmatch(to_tag) is None:
            raise ValueError(f"To tag {to_tag!r} is not a token")
        to_value = f"{to_value};tag={to_tag}"
    fields.append(("To", to_value))
    fields.append(("Call-ID", request._single("Call-ID")))
    fields.append(("CSeq", request._single("CSeq")))
    if status == 100:
        fields += [("Timestamp", v) for v in request.headers.get_all("Timestamp")]
    fields += list(headers)
    if content_type is not None:
        fields.append(("Content-Type", content_type))
    return Response(
        status=status,
        reason=reason if reason is not None else REASON_PHRASES.get(status, ""),
        headers=Headers(fields),
        body=body,
    )


def _warning_text(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:200]


def make_error_response(
    data: bytes, error: SipParseError, *, agent: str, to_tag: str
) -> Response | None:
    """Answer a request we could not parse, if enough of it is readable.

    RFC 3261 §8.2.6 needs Via, From, To, Call-ID and CSeq copied, so they are
    dug out leniently; responses, ACKs (never answered, §17.1.1.3) and input
    without those headers give ``None`` — the edge then drops it (§18.3).
    The problem is reported as ``Warning: 399 <agent> "<reason>"``.
    """
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    lines = head.decode("utf-8", "replace").split("\r\n")
    start = lines[0]
    method = start.split(" ", 1)[0]
    if start[:4].upper() == "SIP/" or method == "ACK" or _TOKEN_RE.fullmatch(method) is None:
        return None
    found: dict[str, list[str]] = {}
    previous: str | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and previous is not None:
            found[previous][-1] = f"{found[previous][-1]} {line.strip()}".strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            previous = None
            continue
        canonical = canonical_name(name.strip())
        found.setdefault(canonical, []).append(value.strip())
        previous = canonical
    needed = ("Via", "From", "To", "Call-ID", "CSeq")
    if any(not found.get(name) for name in needed):
        return None
    to_value = found["To"][0]
    if ";tag=" not in to_value.replace(" ", "").lower():
        to_value = f"{to_value};tag={to_tag}"
    fields = [("Via", v) for v in found["Via"]]
    fields += [("From", found["From"][0]), ("To", to_value)]
    fields += [("Call-ID", found["Call-ID"][0]), ("CSeq", found["CSeq"][0])]
    fields.append(("Warning", f"399 {agent} {quote_string(_warning_text(error.reason))}"))
    try:
        headers = Headers(fields)
    except ValueError:
        return None
    return Response(error.status, REASON_PHRASES.get(error.status, ""), headers)
