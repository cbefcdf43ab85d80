"""Digest authentication for our requests: answering 401 and 407 challenges (sans-I/O).

When we dial out, a trunk or proxy may challenge the INVITE (401 with ``WWW-Authenticate``,
407 with ``Proxy-Authenticate``, RFC 3261 §22.2-22.3). The dial-out code then asks a
:class:`DigestClient` for the credentials header, re-sends the request with CSeq+1 and a new
Via branch, and may add the same credentials to later requests of the call.

Supported (RFC 2617, RFC 7616, RFC 8760): MD5, MD5-sess, SHA-256, SHA-256-sess and, when
hashlib has it, SHA-512-256(-sess); qop ``auth``, ``auth-int`` (used only when it is the one
offered: it hashes the body, which the retry must then carry unchanged) and no qop at all
(RFC 2069). When a response offers several Digest challenges — RFC 8760 servers offer SHA-256
and MD5 side by side — we answer the strongest one we support; other schemes are ignored.

Theory of operation — when to give up. A server refuses credentials by challenging the
request that carried them again, without ``stale=TRUE``; ``stale=TRUE`` instead says the
password was right but the nonce had expired, so we answer once more with the new nonce.
Servers differ in the nonce of that second challenge: some repeat it, many (Kamailio,
Asterisk PJSIP) send a fresh one each time, so "same nonce" alone would loop forever on a
wrong password. Hence :meth:`DigestClient.authorize` raises :class:`DigestAuthFailed` when
the challenge is for the retry of the request it answered last for that realm — the CSeq
number one higher, same method, as RFC 3261 §22.2 has the caller send it — and is not stale,
whatever its nonce; or, for a response without a usable CSeq, when it repeats the nonce we
answered. A retry answered stale more than ``max_stale`` times in a row also fails. A
challenge to any other request (a BYE sent without credentials, say) is answered, even
with the same nonce.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.headers import quote_string, split_header_values, unquote_string
from sipscribe.sip.message import Response
from sipscribe.sip.uri import SipUri

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "DigestAuthFailed",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "DigestError",
    "compute_response",
    "credentials",
    "parse_challenges",
    "select_challenge",
]


class DigestError(ValueError):
    """We cannot answer this challenge: it is malformed, or offers nothing we support.

    Either way the request cannot be authenticated; the message says why.
    """


class DigestAuthFailed(DigestError):
    """The server refused our credentials for `realm`: the caller gives up ("auth failed")."""

    def __init__(self, message: str, realm: str | None = None) -> None:
        super().__init__(message)
        self.realm = realm


# --- algorithms ------------------------------------------------------------------------------

_Hash = Callable[[bytes], str]


def _hasher(name: str) -> _Hash | None:
    try:
        hashlib.new(name)
    except ValueError:  # an OpenSSL build without it
        return None
    return lambda data: hashlib.new(name, data).hexdigest()


# Base algorithm (upper case) -> (hex-digest function, strength rank).
_ALGORITHMS: dict[str, tuple[_Hash, int]] = {
    "MD5": (lambda data: hashlib.md5(data).hexdigest(), 1),
    "SHA-256": (lambda data: hashlib.sha256(data).hexdigest(), 2),
}
_sha512_256 = _hasher("sha512_256")
if _sha512_256 is not None:
    _ALGORITHMS["SHA-512-256"] = (_sha512_256, 3)

#: Every ``algorithm`` value we can answer (compared case-insensitively).
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(
    name + suffix for name in _ALGORITHMS for suffix in ("", "-SESS")
)


def _split_algorithm(algorithm: str | None) -> tuple[str, bool]:
    """``("SHA-256", True)`` for ``sha-256-sess``; an absent algorithm means MD5 (RFC 7616)."""
    name = (algorithm or "MD5").upper()
    if name.endswith("-SESS"):
        return name[: -len("-SESS")], True
    return name, False


def compute_response(
    *,
    algorithm: str | None,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 7616 §3.4.1 (RFC 2069 when `qop` is None), in hex.

    Text is hashed as UTF-8. A ``-sess`` algorithm and any `qop` need `cnonce`.
    """
    base, session = _split_algorithm(algorithm)
    if base not in _ALGORITHMS:
        raise DigestError(f"Digest algorithm {algorithm!r} is not supported")
    digest = _ALGORITHMS[base][0]

    def h(*parts: str | bytes) -> str:
        return digest(b":".join(p if isinstance(p, bytes) else p.encode() for p in parts))

    if (session or qop is not None) and cnonce is None:
        raise DigestError(f"Digest algorithm {algorithm} with qop {qop} needs a cnonce")
    ha1 = h(username, realm, password)
    if session:
        ha1 = h(ha1, nonce, cnonce or "")
    if qop == "auth-int":
        ha2 = h(method, uri, digest(body))
    elif qop in (None, "auth"):
        ha2 = h(method, uri)
    else:
        raise DigestError(f"Digest qop {qop!r} is not supported")
    if qop is None:
        return h(ha1, nonce, ha2)
    return h(ha1, nonce, f"{nc:08x}", cnonce or "", qop, ha2)


# --- challenges --------------------------------------------------------------------------------

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SPACE = "[ \t\r\n]"
_PARAM_RE = re.compile(rf"(?P<name>{_TOKEN}){_SPACE}*={_SPACE}*(?P<value>.*)", re.S)
_SCHEME_RE = re.compile(rf"(?P<scheme>{_TOKEN})(?:{_SPACE}+(?P<rest>.*))?", re.S)
_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_UNQUOTED_RE = re.compile(r'[^ \t\r\n",]+')


@dataclass(frozen=True)
class DigestChallenge:
    """One Digest challenge of a ``WWW-Authenticate`` or ``Proxy-Authenticate`` header.

    Values are unquoted. `algorithm` keeps the server's spelling (we echo it), None when
    absent (meaning MD5); `qop` lists the offered qop-options in lower case, () when absent.
    """

    realm: str
    nonce: str
    algorithm: str | None = None
    opaque: str | None = None
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: tuple[str, ...] = ()
    #: Every parameter as sent, names lower-cased, values unquoted (charset, userhash ...).
    params: tuple[tuple[str, str], ...] = ()

    @property
    def chosen_qop(self) -> str | None:
        """The qop we answer with: ``auth`` if offered, else ``auth-int``, None without qop."""
        if not self.qop:
            return None
        if "auth" in self.qop:
            return "auth"
        return "auth-int" if "auth-int" in self.qop else None

    @property
    def supported(self) -> bool:
        """Whether we can answer it: a known algorithm and qop; -sess needs a qop (cnonce)."""
        base, session = _split_algorithm(self.algorithm)
        if base not in _ALGORITHMS:
            return False
        if self.qop and self.chosen_qop is None:
            return False
        return not session or bool(self.qop)

    @property
    def strength(self) -> int:
        """Rank of the hash: SHA-512-256 > SHA-256 > MD5; 0 if unsupported."""
        return _ALGORITHMS[_split_algorithm(self.algorithm)[0]][1] if self.supported else 0


def _split_items(value: str) -> list[str]:
    """The comma-separated items of a challenge header, commas in quoted strings kept."""
    try:
        items = split_header_values(value, "authentication challenge")
    except SipParseError as exc:
        raise DigestError(exc.reason) from exc
    return [item.strip(" \t\r\n") for item in items]


@dataclass
class _RawChallenge:
    scheme: str
    params: list[tuple[str, str, bool]] = field(default_factory=list)  # name, value, quoted

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"


def _param(text: str) -> tuple[str, str, bool] | None:
    """``(name, value, quoted)`` of an auth-param, or None if `text` is not one."""
    match = _PARAM_RE.fullmatch(text)
    if match is None:
        return None
    raw = match["value"]
    if _QUOTED_RE.fullmatch(raw):
        return match["name"].lower(), unquote_string(raw), True
    if _UNQUOTED_RE.fullmatch(raw):
        return match["name"].lower(), raw, False
    return None


def _raw_challenges(value: str) -> list[_RawChallenge]:
    """Cut a header value into challenges: ``scheme param, param, scheme param ...``."""
    out: list[_RawChallenge] = []
    for item in _split_items(value):
        if not item:
            continue  # RFC 7230 §7: empty list elements are ignored
        current = out[-1] if out else None
        param = _param(item)
        if param is not None:
            if current is None:
                raise DigestError(f"authentication parameter {item[:40]!r} comes before a scheme")
            current.params.append(param)
            continue
        scheme = _SCHEME_RE.fullmatch(item)
        if scheme is None:
            if current is not None and not current.is_digest:
                continue  # another scheme's token68 or syntax: not ours to judge
            raise DigestError(f"Digest challenge has unexpected text {item[:40]!r}")
        rest = scheme["rest"]
        if (
            rest is None
            and current is not None
            and current.is_digest
            and current.params
            and current.params[-1][0] == "qop"
            and not current.params[-1][2]
        ):
            # qop=auth,auth-int sent unquoted: the list goes on
            name, prior, quoted = current.params.pop()
            current.params.append((name, f"{prior},{item}", quoted))
            continue
        challenge = _RawChallenge(scheme["scheme"])
        out.append(challenge)
        if rest is not None:
            first = _param(rest)
            if first is not None:
                challenge.params.append(first)
            elif challenge.is_digest:
                raise DigestError(f"Digest challenge has unexpected text {rest[:40]!r}")
    return out


def _build(raw: _RawChallenge) -> DigestChallenge:
    values: dict[str, str] = {}
    for name, value, _ in raw.params:
        if name in values:
            raise DigestError(f"Digest challenge repeats the {name} parameter")
        if "\r" in value or "\n" in value:
            raise DigestError(f"Digest challenge {name} contains CR or LF")
        values[name] = value
    for required in ("realm", "nonce"):
        if required not in values:
            raise DigestError(f"Digest challenge has no {required}")
    return DigestChallenge(
        realm=values["realm"],
        nonce=values["nonce"],
        algorithm=values.get("algorithm"),
        opaque=values.get("opaque"),
        qop=tuple(q.strip().lower() for q in values.get("qop", "").split(",") if q.strip()),
        stale=values.get("stale", "").lower() == "true",
        domain=tuple(values.get("domain", "").split()),
        params=tuple((name, value) for name, value, _ in raw.params),
    )


def parse_challenges(value: str) -> list[DigestChallenge]:
    """The Digest challenges in one ``WWW-Authenticate``/``Proxy-Authenticate`` value, in order.

    Tolerates any parameter order, unquoted values, spaces, case-insensitive names and
    several challenges in one value; other schemes are skipped. Raises :class:`DigestError`
    — and nothing else — for a malformed value or Digest challenge.
    """
    return [_build(raw) for raw in _raw_challenges(value) if raw.is_digest]


def select_challenge(challenges: list[DigestChallenge]) -> DigestChallenge:
    """The challenge to answer: the strongest supported algorithm, the first on a tie."""
    usable = [c for c in challenges if c.supported]
    if not usable:
        offered = ", ".join(sorted({c.algorithm or "MD5" for c in challenges})) or "none"
        raise DigestError(f"no Digest challenge we can answer (algorithms offered: {offered})")
    return max(usable, key=lambda c: c.strength)  # max keeps the first of equals


# --- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestCredentials:
    """A username and password; the password stays out of ``repr`` (and so out of logs)."""

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if any(c in self.username for c in "\r\n"):
            raise ValueError("Digest username must not contain CR or LF")


@dataclass
class _Space:
    """What we know of one protection space: a header kind and a realm (RFC 3261 §22.1)."""

    challenge: DigestChallenge
    cnonce: str
    nc: int = 0
    last_challenged: tuple[int, str] | None = None  # CSeq of the request challenged last
    stale_run: int = 0


_CHALLENGE_HEADERS = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


def _new_cnonce() -> str:
    return secrets.token_hex(8)


class DigestClient:
    """Answers Digest challenges for the requests of one call, keeping nonce state.

    Make one per dialled call, ``DigestClient(username, password)``. :meth:`authorize`
    answers a 401/407 and raises :class:`DigestAuthFailed` when the server has refused the
    credentials (see the module docstring) or :class:`DigestError` when the challenge cannot
    be answered; either way the request fails. :meth:`authorize_again` reuses the nonces
    for later requests.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] = _new_cnonce,
        max_stale: int = 3,
    ) -> None:
        self.credentials = DigestCredentials(username, password)
        self._cnonce_factory = cnonce_factory
        self._max_stale = max_stale
        self._spaces: dict[tuple[str, str], _Space] = {}

    def authorize(
        self,
        request_method: str,
        request_uri: SipUri | str,
        challenge_response: Response,
        body: bytes = b"",
    ) -> tuple[str, str]:
        """``(header name, value)`` answering a 401 or 407 to re-send `request_method` with.

        `request_uri` is the retried request's Request-URI and `body` its body (hashed for
        qop=auth-int). The retry must carry CSeq+1, which is how a refusal is recognised.
        """
        status = challenge_response.status
        if status not in _CHALLENGE_HEADERS:
            raise DigestError(f"a {status} response carries no authentication challenge")
        challenge_header, header = _CHALLENGE_HEADERS[status]
        values = challenge_response.headers.get_all(challenge_header)
        if not values:
            raise DigestError(f"{status} response has no {challenge_header} header")
        challenges: list[DigestChallenge] = []
        errors: list[DigestError] = []
        for value in values:
            try:
                challenges += parse_challenges(value)
            except DigestError as exc:
                errors.append(exc)
        if errors and not any(c.supported for c in challenges):
            raise errors[0]
        challenge = select_challenge(challenges)
        cseq = _cseq_of(challenge_response)
        key = (header, challenge.realm)
        space = self._spaces.get(key)
        stale_run = 0 if space is None else self._check_refusal(space, challenge, cseq)
        if space is None or space.challenge.nonce != challenge.nonce:
            space = _Space(challenge, self._cnonce_factory())  # a new nonce counts from 1
        else:
            space.challenge = challenge  # same nonce: keep counting, never reuse an nc
        space.last_challenged = cseq
        space.stale_run = stale_run
        self._spaces[key] = space
        return header, self._header_value(space, request_method, request_uri, body)

    def authorize_again(
        self, request_method: str, request_uri: SipUri | str, body: bytes = b""
    ) -> list[tuple[str, str]]:
        """Headers to send unasked with a later request of the call (RFC 3261 §22.3).

        One per realm answered so far, each with its nonce count one higher; [] before any
        challenge. Add them all; a challenge to that request then goes to :meth:`authorize`.
        """
        return [
            (header, self._header_value(space, request_method, request_uri, body))
            for (header, _), space in self._spaces.items()
        ]

    def _check_refusal(
        self, space: _Space, challenge: DigestChallenge, cseq: tuple[int, str] | None
    ) -> int:
        """Raise :class:`DigestAuthFailed` if this challenge refuses what we sent; else the
        number of stale answers in a row to this request."""
        realm = challenge.realm
        previous = space.last_challenged
        is_retry = (
            cseq is not None
            and previous is not None
            and cseq[1] == previous[1]
            and cseq[0] == previous[0] + 1
        )
        if challenge.stale:
            stale_run = space.stale_run + 1 if is_retry else 1
            if stale_run > self._max_stale:
                raise DigestAuthFailed(
                    f"realm {realm!r} answered stale=TRUE {stale_run} times in a row",
                    realm=realm,
                )
            return stale_run
        if is_retry:
            raise DigestAuthFailed(
                f"credentials refused for realm {realm!r}: the retry was challenged again",
                realm=realm,
            )
        if cseq is None and challenge.nonce == space.challenge.nonce:
            raise DigestAuthFailed(
                f"credentials refused for realm {realm!r}: challenged again with the same nonce",
                realm=realm,
            )
        return 0

    def _header_value(
        self, space: _Space, method: str, request_uri: SipUri | str, body: bytes
    ) -> str:
        challenge = space.challenge
        uri = str(request_uri)
        qop = challenge.chosen_qop
        space.nc += 1
        if space.nc > 0xFFFFFFFF:
            raise DigestError(f"nonce count for realm {challenge.realm!r} is exhausted")
        response = compute_response(
            algorithm=challenge.algorithm,
            username=self.credentials.username,
            password=self.credentials.password,
            realm=challenge.realm,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=space.nc,
            cnonce=space.cnonce,
            body=body,
        )
        parts = [
            f"username={quote_string(self.credentials.username)}",
            f"realm={quote_string(challenge.realm)}",
            f"nonce={quote_string(challenge.nonce)}",
            f"uri={quote_string(uri)}",
            f'response="{response}"',
        ]
        if challenge.algorithm is not None:
            parts.append(f"algorithm={challenge.algorithm}")
        if qop is not None:
            parts.append(f"cnonce={quote_string(space.cnonce)}")
        if challenge.opaque is not None:
            parts.append(f"opaque={quote_string(challenge.opaque)}")
        if qop is not None:
            parts += [f"qop={qop}", f"nc={space.nc:08x}"]
        return "Digest " + ", ".join(parts)


def _cseq_of(response: Response) -> tuple[int, str] | None:
    try:
        cseq = response.cseq
    except SipParseError:
        return None
    return cseq.number, cseq.method.upper()


def credentials(
    username: str, password: str, *, cnonce_factory: Callable[[], str] = _new_cnonce
) -> DigestClient:
    """A fresh :class:`DigestClient` for one call with these credentials."""
    return DigestClient(username, password, cnonce_factory=cnonce_factory)
