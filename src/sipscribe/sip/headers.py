"""Header names and the typed header values the SIP core relies on.

Messages keep every header field as text (so unknown headers and odd spacing
survive untouched, RFC 4475 wsinv); these classes parse the values that drive
behaviour — Via, From/To/Contact/Route, CSeq, option tags, session timers —
and print canonical text back. Every ``parse`` raises :class:`SipParseError`
whose message names the header and the fault.

Value grammar shared by most headers (RFC 3261 §25.1)::

    generic-param = token [ EQUAL gen-value ]
    gen-value     = token / host / quoted-string
    SEMI = SWS ";" SWS        EQUAL = SWS "=" SWS      COMMA = SWS "," SWS
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.uri import Params, SipUri, Uri, parse_host, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "MAGIC_COOKIE",
    "SINGLE_HEADERS",
    "WILDCARD",
    "CSeq",
    "MediaType",
    "MinSE",
    "NameAddr",
    "Reason",
    "RetryAfter",
    "SessionExpires",
    "Via",
    "Warning",
    "Wildcard",
    "canonical_name",
    "find_param",
    "parse_contacts",
    "parse_max_forwards",
    "parse_option_tags",
    "quote_string",
    "split_header_values",
    "unquote_string",
]

#: RFC 3261 §8.1.1.7: a branch starting with this was made by an RFC 3261 client.
MAGIC_COOKIE = "z9hG4bK"

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN)
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE; qdtext excludes CTLs but LWS,
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
_QUOTED_RE = re.compile(_QUOTED)
_PARAM_RE = re.compile(
    rf"\s*;\s*(?P<name>{_TOKEN})(?:\s*=\s*(?P<value>{_QUOTED}|[A-Za-z0-9\-.!%*_+`'~:\[\]]+))?\s*"
)

# --- header names ------------------------------------------------------------

#: RFC 3261 §7.3.3 and later RFCs: compact form -> canonical name.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow Allow-Events "
    "Authentication-Info Authorization Call-ID Call-Info Contact Content-Disposition "
    "Content-Encoding Content-Language Content-Length Content-Transfer-Encoding Content-Type "
    "CSeq Date Error-Info Event Expires From Geolocation History-Info Identity Identity-Info "
    "In-Reply-To Info-Package Join Max-Forwards MIME-Version Min-Expires Min-SE Organization "
    "P-Asserted-Identity P-Preferred-Identity Path Priority Privacy Proxy-Authenticate "
    "Proxy-Authorization Proxy-Require RAck Reason Record-Route Recv-Info Refer-To "
    "Referred-By Reject-Contact Replaces Reply-To Request-Disposition Require Retry-After Route "
    "RSeq Security-Client Security-Server Security-Verify Server Service-Route Session-Expires "
    "SIP-ETag SIP-If-Match Subject Subscription-State Supported Target-Dialog Timestamp To "
    "Unsupported User-Agent Via Warning WWW-Authenticate"
).split()
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update(COMPACT_FORMS)

#: Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1). Others —
#: WWW-Authenticate, Authorization, Date, unknown extensions — are never split.
LIST_HEADERS = frozenset(
    "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow Allow-Events "
    "Call-Info Contact Content-Encoding Content-Language Error-Info History-Info In-Reply-To "
    "P-Asserted-Identity P-Preferred-Identity Path Proxy-Require Reason Record-Route "
    "Reject-Contact Request-Disposition Require Route Security-Client Security-Server "
    "Security-Verify Service-Route Supported Unsupported Via Warning".split()
)

#: Headers that may appear at most once; a second copy makes the message invalid
#: (RFC 4475 multi01, mcl01).
SINGLE_HEADERS = frozenset(
    "Call-ID CSeq From To Max-Forwards Content-Length Content-Type Session-Expires Min-SE".split()
)


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name; compact forms expand.

    Unknown names are returned as given: their case carries no meaning but
    we have no better spelling for them.
    """
    return _CANONICAL.get(name.lower(), name)


# --- lexical helpers ------------------------------------------------------------


def quote_string(text: str) -> str:
    """Quote `text` as a SIP quoted-string, escaping ``"``, ``\\`` and controls.

    CR and LF cannot be carried by a quoted-pair, so they are rejected.
    """
    if "\r" in text or "\n" in text:
        raise ValueError("a SIP quoted-string cannot contain CR or LF")
    out = ['"']
    for ch in text:
        if ch in '"\\' or (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f":
            out.append("\\")
        out.append(ch)
    out.append('"')
    return "".join(out)


def unquote_string(text: str) -> str:
    """Inverse of :func:`quote_string`; unquoted text is returned unchanged."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_header_values(value: str, header: str = "header") -> list[str]:
    """Split a list header at commas outside quoted strings and ``<...>``.

    Returns stripped items, empty ones included, so that a caller can reject
    ``Via: a,,b`` (RFC 4475 badinv01).
    """
    items: list[str] = []
    start = 0
    in_quote = in_angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    if in_quote:
        raise SipParseError(f"{header} has an unterminated quoted string")
    items.append(value[start:].strip())
    return items


def _parse_params(text: str, header: str) -> Params:
    """Parse ``*( SEMI generic-param )``; the whole of `text` must be consumed."""
    params: list[tuple[str, str | None]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _PARAM_RE.match(text, pos)
        if match is None:
            rest = text[pos:].lstrip()
            if rest.startswith(";"):
                raise SipParseError(f"{header} has an empty or invalid parameter")
            raise SipParseError(f"{header} has unexpected text {rest[:40]!r}")
        params.append((match["name"], match["value"]))
        pos = match.end()
    return tuple(params)


def _format_params(params: Params) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def find_param(params: Params, name: str) -> tuple[bool, str | None]:
    """``(found, value)`` for `name`, compared case-insensitively."""
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return True, v
    return False, None


def _param_value(params: Params, name: str) -> str | None:
    found, value = find_param(params, name)
    if not found:
        return None
    return "" if value is None else unquote_string(value)


def _set_param(params: Params, name: str, value: str | None) -> Params:
    """Set `name`, in place if present (keeping its position), else at the end."""
    lname = name.lower()
    if any(n.lower() == lname for n, _ in params):
        out: list[tuple[str, str | None]] = []
        for n, v in params:
            if n.lower() != lname:
                out.append((n, v))
            elif not any(o.lower() == lname for o, _ in out):
                out.append((n, value))
        return tuple(out)
    return (*params, (name, value))


def _parse_int(text: str, header: str, what: str, *, maximum: int = 2**32 - 1) -> int:
    if not text.isascii() or not text.isdigit():
        raise SipParseError(f"{header} {what} {text!r} is not a number")
    value = int(text)
    if value > maximum:
        raise SipParseError(f"{header} {what} {text} exceeds {maximum}")
    return value


# --- Via ---------------------------------------------------------------------------

_VIA_RE = re.compile(
    rf"(?P<name>{_TOKEN})\s*/\s*(?P<version>{_TOKEN})\s*/\s*(?P<transport>{_TOKEN})\s+"
    r"(?P<host>\[[^\]\s]*\]|[^\s:;\[\]]+)(?:\s*:\s*(?P<port>[0-9]+))?"
)


@dataclass(frozen=True)
class Via:
    """One Via value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

    ``Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport``
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        text = text.strip()
        match = _VIA_RE.match(text)
        if match is None:
            raise SipParseError(f"Via {text[:60]!r} is not valid")
        port = None
        if match["port"] is not None:
            port = _parse_int(match["port"], "Via", "port", maximum=65535)
        return cls(
            transport=match["transport"].upper(),
            host=parse_host(match["host"]),
            port=port,
            params=_parse_params(text[match.end() :], "Via"),
            protocol=f"{match['name'].upper()}/{match['version']}",
        )

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return _param_value(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _param_value(self.params, "received")

    @property
    def maddr(self) -> str | None:
        return _param_value(self.params, "maddr")

    @property
    def has_rport(self) -> bool:
        return find_param(self.params, "rport")[0]

    @property
    def rport(self) -> int | None:
        """The filled-in ``rport`` value (RFC 3581), or ``None`` if empty/absent."""
        value = _param_value(self.params, "rport")
        if value and value.isascii() and value.isdigit() and int(value) <= 65535:
            return int(value)
        return None

    @property
    def is_rfc3261_branch(self) -> bool:
        """Branch starts with the magic cookie *and* carries an identifier
        (RFC 4475 badbranch: a bare ``z9hG4bK`` falls back to RFC 2543 rules)."""
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > 7

    @property
    def sent_by_port(self) -> int:
        """The sent-by port, defaulting per transport (RFC 3261 §18.2.2)."""
        if self.port is not None:
            return self.port
        return 5061 if self.transport in ("TLS", "WSS") else 5060

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=_set_param(self.params, name, value))


# --- name-addr ------------------------------------------------------------------------

_DISPLAY_TOKENS_RE = re.compile(rf"({_TOKEN}(?:\s+{_TOKEN})*)?\s*<")
_ADDR_SPEC_RE = re.compile(r"[^;\s]+")


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route/Record-Route value: display name, URI, params.

    Parses both ``"Alice" <sip:a@b>;tag=1`` and the addr-spec form
    ``sip:a@b;tag=1`` (where parameters belong to the header, not the URI);
    always prints the bracketed form.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str, *, header: str = "name-addr") -> NameAddr:
        text = text.strip()
        if not text:
            raise SipParseError(f"{header} is empty")
        display: str | None = None
        pos = 0
        if text.startswith('"'):
            match = _QUOTED_RE.match(text)
            if match is None:
                raise SipParseError(f"{header} has an unterminated or invalid quoted display name")
            display = unquote_string(match.group())
            pos = match.end()
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos >= len(text) or text[pos] != "<":
                raise SipParseError(f"{header} has a display name without <URI>")
        else:
            match = _DISPLAY_TOKENS_RE.match(text)
            if match is not None:
                if match[1]:
                    display = " ".join(match[1].split())
                pos = match.end() - 1
        if pos < len(text) and text[pos] == "<":
            end = text.find(">", pos)
            if end < 0:
                raise SipParseError(f"{header} has an unterminated <URI>")
            uri = _parse_uri_in(text[pos + 1 : end], header)
            pos = end + 1
        else:
            match = _ADDR_SPEC_RE.match(text, pos)
            if match is None:
                raise SipParseError(f"{header} has no URI")
            uri = _parse_uri_in(match.group(), header)
            if isinstance(uri, SipUri) and uri.headers:
                raise SipParseError(f"{header} URI with headers must be enclosed in <>")
            pos = match.end()
        return cls(uri=uri, display_name=display, params=_parse_params(text[pos:], header))

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote_string(self.display_name) + " "
        return f"{name}<{self.uri}>{_format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return _param_value(self.params, "tag")

    def param(self, name: str) -> str | None:
        """Parameter value (quotes removed); ``None`` absent, ``""`` valueless."""
        return _param_value(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=_set_param(self.params, name, value))

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_param("tag", tag)


def _parse_uri_in(text: str, header: str) -> Uri:
    try:
        return parse_uri(text)
    except SipParseError as exc:
        raise SipParseError(f"{header} URI is not valid: {exc.reason}", status=exc.status) from None


class Wildcard:
    """``Contact: *`` (RFC 3261 §10.2.2, REGISTER only)."""

    _instance: Wildcard | None = None

    def __new__(cls) -> Wildcard:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __str__(self) -> str:
        return "*"

    def __repr__(self) -> str:
        return "WILDCARD"


WILDCARD = Wildcard()


def parse_contacts(values: list[str]) -> tuple[NameAddr, ...] | Wildcard:
    """Parse the raw Contact field values of a message into name-addrs or ``*``."""
    items = [item for value in values for item in split_header_values(value, "Contact")]
    if items == ["*"]:
        return WILDCARD
    if "*" in items:
        raise SipParseError("Contact * must be the only Contact value")
    out = []
    for item in items:
        if not item:
            raise SipParseError("Contact has an empty value")
        out.append(NameAddr.parse(item, header="Contact"))
    return tuple(out)


# --- small scalar headers ---------------------------------------------------------------

_CSEQ_RE = re.compile(rf"\s*([0-9]+)\s+({_TOKEN})\s*")


@dataclass(frozen=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16); number below 2**32."""

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = _CSEQ_RE.fullmatch(text)
        if match is None:
            raise SipParseError(f"CSeq {text.strip()[:40]!r} is not valid")
        return cls(_parse_int(match[1], "CSeq", "number"), match[2])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_max_forwards(text: str) -> int:
    """``Max-Forwards`` value, 0-255 (RFC 3261 §20.22, RFC 4475 scalar02)."""
    return _parse_int(text.strip(), "Max-Forwards", "value", maximum=255)


def parse_option_tags(values: list[str], header: str) -> tuple[str, ...]:
    """Option tags of Require/Supported/Proxy-Require/Unsupported (§19.2).

    An empty header (``Supported:``) is allowed and yields no tags.
    """
    tags: list[str] = []
    for value in values:
        if not value.strip():
            continue
        for item in split_header_values(value, header):
            if _TOKEN_RE.fullmatch(item) is None:
                raise SipParseError(f"{header} option tag {item!r} is not a token")
            tags.append(item)
    return tuple(tags)


@dataclass(frozen=True)
class SessionExpires:
    """``Session-Expires: 1800;refresher=uac`` (RFC 4028 §4)."""

    delta: int
    refresher: Literal["uac", "uas"] | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> SessionExpires:
        delta_text, semi, rest = text.strip().partition(";")
        delta = _parse_int(delta_text.strip(), "Session-Expires", "interval")
        if delta == 0:
            raise SipParseError("Session-Expires interval must not be zero")
        params = _parse_params(";" + rest, "Session-Expires") if semi else ()
        refresher: Literal["uac", "uas"] | None = None
        others: list[tuple[str, str | None]] = []
        for name, value in params:
            if name.lower() == "refresher":
                if value is None or value.lower() not in ("uac", "uas"):
                    raise SipParseError(f"Session-Expires refresher {value!r} is not uac or uas")
                refresher = "uac" if value.lower() == "uac" else "uas"
            else:
                others.append((name, value))
        return cls(delta, refresher, tuple(others))

    def __str__(self) -> str:
        refresher = "" if self.refresher is None else f";refresher={self.refresher}"
        return f"{self.delta}{refresher}{_format_params(self.params)}"


@dataclass(frozen=True)
class MinSE:
    """``Min-SE: 90`` (RFC 4028 §5): the smallest interval a hop accepts."""

    delta: int
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> MinSE:
        delta_text, semi, rest = text.strip().partition(";")
        delta = _parse_int(delta_text.strip(), "Min-SE", "interval")
        params = _parse_params(";" + rest, "Min-SE") if semi else ()
        return cls(delta, params)

    def __str__(self) -> str:
        return f"{self.delta}{_format_params(self.params)}"


_WARNING_RE = re.compile(rf"\s*([0-9]{{3}})\s+(\S+)\s+({_QUOTED})\s*")


@dataclass(frozen=True)
class Warning:
    """``Warning: 399 srs.example.com "Content-Length is not a number"`` (§20.43)."""

    code: int
    agent: str
    text: str

    @classmethod
    def parse(cls, text: str) -> Warning:
        match = _WARNING_RE.fullmatch(text)
        if match is None:
            raise SipParseError(f"Warning {text.strip()[:60]!r} is not valid")
        return cls(int(match[1]), match[2], unquote_string(match[3]))

    def __str__(self) -> str:
        return f"{self.code} {self.agent} {quote_string(self.text)}"


_RETRY_AFTER_RE = re.compile(r"\s*([0-9]+)\s*(?:\((?P<comment>[^()]*)\))?")


@dataclass(frozen=True)
class RetryAfter:
    """``Retry-After: 120 (busy);duration=3600`` (§20.33).

    RFC 3261 gives no range; absurd values (RFC 4475 scalarlg) clamp to 2**32-1.
    """

    seconds: int
    comment: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> RetryAfter:
        match = _RETRY_AFTER_RE.match(text)
        if match is None:
            raise SipParseError(f"Retry-After {text.strip()[:40]!r} is not valid")
        seconds = min(int(match[1]), 2**32 - 1)
        return cls(seconds, match["comment"], _parse_params(text[match.end() :], "Retry-After"))

    def __str__(self) -> str:
        comment = "" if self.comment is None else f" ({self.comment})"
        return f"{self.seconds}{comment}{_format_params(self.params)}"


@dataclass(frozen=True)
class Reason:
    """``Reason: SIP ;cause=200 ;text="Call completed elsewhere"`` (RFC 3326)."""

    protocol: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Reason:
        text = text.strip()
        match = _TOKEN_RE.match(text)
        if match is None:
            raise SipParseError(f"Reason {text[:40]!r} is not valid")
        return cls(match.group(), _parse_params(text[match.end() :], "Reason"))

    def __str__(self) -> str:
        return f"{self.protocol}{_format_params(self.params)}"

    @property
    def cause(self) -> int | None:
        value = _param_value(self.params, "cause")
        return int(value) if value and value.isascii() and value.isdigit() else None

    @property
    def text(self) -> str | None:
        return _param_value(self.params, "text")


_MEDIA_TYPE_RE = re.compile(rf"\s*({_TOKEN})\s*/\s*({_TOKEN})")


@dataclass(frozen=True)
class MediaType:
    """``Content-Type: multipart/mixed;boundary=OSS-unique-boundary-42`` (§20.15)."""

    type: str
    subtype: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> MediaType:
        match = _MEDIA_TYPE_RE.match(text)
        if match is None:
            raise SipParseError(f"Content-Type {text.strip()[:40]!r} is not valid")
        params = _parse_params(text[match.end() :], "Content-Type")
        return cls(match[1].lower(), match[2].lower(), params)

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{_format_params(self.params)}"

    @property
    def mime(self) -> str:
        """``type/subtype`` without parameters, lower-cased."""
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)
