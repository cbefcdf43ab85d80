"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), plus opaque others.

Components are kept *as written*, escapes included (``%6C`` stays ``%6C``), so a
URI prints back byte for byte; :meth:`SipUri.user_unescaped` gives the decoded
user part when an application wants to compare identities (RFC 4475 esc01,
escnull: never unescape recursively, never stop at an escaped NUL).

ABNF, abridged::

    SIP-URI   = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    userinfo  = user [ ":" password ] "@"
    user      = 1*( unreserved / escaped / "&" / "=" / "+" / "$" / "," / ";" / "?" / "/" )
    password  = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
    hostport  = host [ ":" port ]            ; host may be "[" IPv6address "]"
    uri-parameter = pname [ "=" pvalue ]     ; 1*paramchar each
    paramchar = unreserved / escaped / "[" / "]" / "/" / ":" / "&" / "+" / "$"
    headers   = "?" hname "=" hvalue *( "&" hname "=" hvalue )
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import unquote_to_bytes

from sipscribe.sip.errors import SipParseError

__all__ = [
    "AbsoluteUri",
    "Params",
    "SipUri",
    "Uri",
    "parse_host",
    "parse_uri",
]

#: Ordered ``(name, value)`` pairs; ``None`` is a parameter with no ``=value``.
Params = tuple[tuple[str, str | None], ...]

_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_ESCAPED = r"%[0-9A-Fa-f]{2}"
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+")
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*")
_PARAM_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})+")
_HNAME_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})+")
_HVALUE_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})*")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_.])?")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_TEL_NUMBER_RE = re.compile(r"[0-9A-Fa-f*#+\-.()pPwW]+")
_OPAQUE_RE = re.compile(r"[^\s<>\"]+")

_SIP_SCHEMES = frozenset({"sip", "sips"})


def _check(pattern: re.Pattern[str], text: str, what: str) -> str:
    if pattern.fullmatch(text) is None:
        raise SipParseError(f"URI {what} {text!r} is not valid")
    return text


def _parse_port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"URI port {text!r} is not valid")
    return int(text)


def parse_host(text: str) -> str:
    """Validate a hostname, IPv4 address or bracketed IPv6 reference."""
    if text.startswith("["):
        if not text.endswith("]"):
            raise SipParseError(f"URI host {text!r} has an unterminated IPv6 reference")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise SipParseError(f"URI host {text!r} is not a valid IPv6 reference") from None
        return text
    if not text:
        raise SipParseError("URI has an empty host")
    return _check(_HOSTNAME_RE, text, "host")


def _parse_uri_params(text: str) -> Params:
    """``;name[=value]`` list, `text` without the leading ``;``."""
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise SipParseError("URI has an empty parameter")
        _check(_PARAM_RE, name, "parameter name")
        if eq:
            _check(_PARAM_RE, value, "parameter value")
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


def _format_params(params: Params) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def _find_param(params: Params, name: str) -> tuple[bool, str | None]:
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return True, v
    return False, None


@dataclass(frozen=True)
class SipUri:
    """A ``sip:``, ``sips:`` or ``tel:`` URI.

    For ``tel:`` the number is held in `user` and `host` is empty. Parameter
    and header names keep their case; look them up with :meth:`param`, which
    ignores case as RFC 3261 §19.1.4 compares them.
    """

    host: str
    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a sip/sips/tel URI; raise :class:`SipParseError` otherwise."""
        uri = parse_uri(text)
        if not isinstance(uri, SipUri):
            raise SipParseError(f"URI scheme {uri.scheme!r} is not supported", status=416)
        return uri

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{_format_params(self.params)}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        out.append(_format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(out)

    # --- convenience -----------------------------------------------------

    @property
    def secure(self) -> bool:
        """True for ``sips:`` (RFC 3261 §19.1: TLS on every hop)."""
        return self.scheme == "sips"

    @property
    def user_unescaped(self) -> bytes | None:
        """The user part with ``%HH`` decoded once, as bytes (may hold NULs)."""
        return None if self.user is None else unquote_to_bytes(self.user)

    @property
    def host_address(self) -> str:
        """The host without IPv6 brackets, as a socket API wants it."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, upper-cased (``UDP``, ``TCP``, ``TLS``)."""
        value = self.param("transport")
        return value.upper() if value else None

    @property
    def lr(self) -> bool:
        """Whether the URI is a loose router (RFC 3261 §16.12, ``;lr``)."""
        return self.has_param("lr")

    def has_param(self, name: str) -> bool:
        return _find_param(self.params, name)[0]

    def param(self, name: str) -> str | None:
        """Value of parameter `name`: ``None`` if absent, ``""`` if valueless."""
        found, value = _find_param(self.params, name)
        if not found:
            return None
        return "" if value is None else value

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        """A copy with `name` set: in place if present (case-insensitively), else appended."""
        lname = name.lower()
        if not self.has_param(name):
            return replace(self, params=(*self.params, (name, value)))
        params: list[tuple[str, str | None]] = []
        for n, v in self.params:
            if n.lower() != lname:
                params.append((n, v))
            elif not any(o.lower() == lname for o, _ in params):
                params.append((n, value))
        return replace(self, params=tuple(params))

    def without_param(self, name: str) -> SipUri:
        return replace(
            self, params=tuple((n, v) for n, v in self.params if n.lower() != name.lower())
        )

    def without_headers(self) -> SipUri:
        return replace(self, headers=())


@dataclass(frozen=True)
class AbsoluteUri:
    """A URI of a scheme we do not interpret (``http:``, ``urn:``, ``isbn:``).

    Valid in To/From/Contact (RFC 4475 unksm2), never routable by us: a
    Request-URI of such a scheme earns ``416 Unsupported URI Scheme``.
    """

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse any absolute URI; sip/sips/tel become :class:`SipUri`.

    Raises :class:`SipParseError` (status 400) naming the faulty component.
    """
    if not text:
        raise SipParseError("URI is empty")
    if any(c.isspace() for c in text):
        raise SipParseError(f"URI {text!r} contains whitespace")
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME_RE.fullmatch(scheme) is None:
        raise SipParseError(f"URI {text!r} has no valid scheme")
    scheme = scheme.lower()
    if scheme in _SIP_SCHEMES:
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    if not rest or _OPAQUE_RE.fullmatch(rest) is None:
        raise SipParseError(f"URI {text!r} is not valid")
    return AbsoluteUri(scheme, rest)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if not user:
            raise SipParseError("URI has an empty user part")
        _check(_USER_RE, user, "user")
        if colon:
            password = _check(_PASSWORD_RE, pw, "password")
    rest, qmark, header_text = rest.partition("?")
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not eq:
                raise SipParseError(f"URI header {item!r} has no value")
            _check(_HNAME_RE, name, "header name")
            _check(_HVALUE_RE, value, "header value")
            headers.append((name, value))
    hostport, semi, param_text = rest.partition(";")
    params = _parse_uri_params(param_text) if semi else ()
    port: int | None = None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(f"URI host {hostport!r} has an unterminated IPv6 reference")
        host, after = hostport[: end + 1], hostport[end + 1 :]
        if after:
            if not after.startswith(":"):
                raise SipParseError(f"URI host {hostport!r} is not valid")
            port = _parse_port(after[1:])
    else:
        host, colon, port_text = hostport.partition(":")
        if colon:
            port = _parse_port(port_text)
    return SipUri(
        host=parse_host(host),
        scheme=scheme,
        user=user,
        password=password,
        port=port,
        params=params,
        headers=tuple(headers),
    )


def _parse_tel(rest: str) -> SipUri:
    number, semi, param_text = rest.partition(";")
    _check(_TEL_NUMBER_RE, number, "telephone number")
    params = _parse_uri_params(param_text) if semi else ()
    return SipUri(host="", scheme="tel", user=number, params=params)
