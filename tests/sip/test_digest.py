"""Digest authentication of our requests: RFC vectors, independent oracles, refusals, sipp."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipscribe.sip.digest import (
    SUPPORTED_ALGORITHMS,
    DigestAuthFailed,
    DigestChallenge,
    DigestClient,
    DigestCredentials,
    DigestError,
    compute_response,
    credentials,
    parse_challenges,
    select_challenge,
)
from sipscribe.sip.message import Headers, Request, Response, parse_message
from sipscribe.sip.uri import SipUri

SIPP = shutil.which("sipp")
SCENARIO = Path(__file__).resolve().parent.parent / "data" / "sipp" / "uas_digest_verify.xml"

# RFC 2617 §3.5
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
# RFC 7616 §3.9.1
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def challenge_response(
    status: int, *values: str, cseq: int = 1, method: str = "INVITE", with_cseq: bool = True
) -> Response:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    fields = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKdigest1"),
        ("From", "<sip:alice@127.0.0.1>;tag=a1"),
        ("To", "<sip:bob@biloxi.example.com>;tag=b1"),
        ("Call-ID", "digest-test@127.0.0.1"),
    ]
    if with_cseq:
        fields.append(("CSeq", f"{cseq} {method}"))
    fields += [(name, v) for v in values]
    return Response(status, "Unauthorized", Headers(fields))


def params(header_value: str) -> dict[str, str]:
    """The parameters of an Authorization value, unquoted (test-side parser)."""
    assert header_value.startswith("Digest ")
    found = re.findall(r'([a-z]+)=("(?:[^"\\]|\\.)*"|[^,\s]+)', header_value[len("Digest ") :])
    return {k: v[1:-1] if v.startswith('"') else v for k, v in found}


# --- RFC examples --------------------------------------------------------------------------------


def test_rfc2617_example_whole_header() -> None:
    client = credentials("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    name, value = client.authorize(
        "GET", "/dir/index.html", challenge_response(401, RFC2617_CHALLENGE)
    )
    assert name == "Authorization"
    assert value == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001'
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    client = credentials("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    _, value = client.authorize(
        "GET", "/dir/index.html", challenge_response(401, rfc7616_challenge(algorithm))
    )
    got = params(value)
    assert got["response"] == expected
    assert got["algorithm"] == algorithm
    assert (got["qop"], got["nc"], got["cnonce"]) == ("auth", "00000001", RFC7616_CNONCE)
    assert got["opaque"] == RFC7616_OPAQUE
    assert ", algorithm=" + algorithm + "," in value and "qop=auth, nc=00000001" in value


def test_rfc7616_server_offering_both_gets_sha256() -> None:
    """RFC 7616 §3.9.1 / RFC 8760: SHA-256 and MD5 offered, the stronger is answered."""
    for order in (("MD5", "SHA-256"), ("SHA-256", "MD5")):
        client = credentials("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
        response = challenge_response(401, *(rfc7616_challenge(a) for a in order))
        _, value = client.authorize("GET", "/dir/index.html", response)
        assert params(value)["response"].startswith("753927fa0e85d155")


# --- independent oracles ---------------------------------------------------------------------


def httpx_authorization(challenge: str, method: str = "GET") -> dict[str, str]:
    """httpx's DigestAuth answering `challenge` (its own cnonce) — an independent implementation."""
    auth = httpx.DigestAuth("Mufasa", "Circle of Life")
    flow = auth.auth_flow(httpx.Request(method, "http://www.example.org/dir/index.html"))
    first = next(flow)
    retried = flow.send(httpx.Response(401, headers={"WWW-Authenticate": challenge}, request=first))
    return params(retried.headers["Authorization"])


_QOPS = ['qop="auth", ', 'qop="auth,auth-int", ', ""]  # "": RFC 2069, which has no -sess


@pytest.mark.parametrize(
    ("algorithm", "qop"),
    [
        (a, q)
        for a in ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
        for q in _QOPS
        if q or not a.endswith("-sess")
    ],
)
def test_matches_httpx(algorithm: str, qop: str) -> None:
    challenge = f'Digest realm="sip.example.com", {qop}nonce="a1b2/c3==", algorithm={algorithm}'
    theirs = httpx_authorization(challenge, "INVITE")
    client = credentials(
        "Mufasa", "Circle of Life", cnonce_factory=lambda: theirs.get("cnonce", "-")
    )
    _, value = client.authorize("INVITE", "/dir/index.html", challenge_response(401, challenge))
    ours = params(value)
    assert ours["response"] == theirs["response"]
    assert ("qop" in ours) == bool(qop) == ("nc" in ours) == ("cnonce" in ours)


class _FixedCnonceHandler(urllib.request.AbstractDigestAuthHandler):
    def get_cnonce(self, nonce: str) -> str:
        return "0a4f113b"


class _SipRequestForUrllib:
    """What urllib's digest handler reads of a request: method, selector (the digest-uri), body."""

    def __init__(self, method: str, uri: str) -> None:
        self.method, self.selector = method, uri
        self.full_url = "http://sip.invalid/"
        self.data = None

    def get_method(self) -> str:
        return self.method


def urllib_response(challenge: dict[str, str], method: str, uri: str, password: str) -> str:
    handler = _FixedCnonceHandler()
    handler.add_password(challenge["realm"], "http://sip.invalid/", "alice", password)
    authorization = handler.get_authorization(_SipRequestForUrllib(method, uri), challenge)
    return params("Digest " + authorization)["response"]


@pytest.mark.parametrize("qop", ["auth", None])
def test_sip_invite_matches_urllib(qop: str | None) -> None:
    """A SIP INVITE to a sip: Request-URI, answered by us and by urllib's handler."""
    uri = SipUri.parse("sip:bob@biloxi.example.com;transport=udp")
    challenge = {"realm": "biloxi.example.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093"}
    if qop:
        challenge["qop"] = qop
    header = ", ".join(f'{k}="{v}"' for k, v in challenge.items())
    client = credentials("alice", "zanzibar", cnonce_factory=lambda: "0a4f113b")
    _, value = client.authorize("INVITE", uri, challenge_response(401, "Digest " + header))
    assert params(value)["uri"] == "sip:bob@biloxi.example.com;transport=udp"
    expected = urllib_response(challenge, "INVITE", str(uri), "zanzibar")
    assert params(value)["response"] == expected


def test_auth_int_only_hashes_the_body() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    client = credentials("alice", "zanzibar", cnonce_factory=lambda: "c0ffee")
    challenge = 'Digest realm="r", nonce="n", qop="auth-int", algorithm=SHA-256'
    _, value = client.authorize(
        "INVITE", "sip:bob@b.example", challenge_response(401, challenge), body
    )
    got = params(value)
    assert got["qop"] == "auth-int"

    def h(text: bytes) -> str:
        return hashlib.sha256(text).hexdigest()

    ha1 = h(b"alice:r:zanzibar")
    ha2 = h(b"INVITE:sip:bob@b.example:" + h(body).encode())
    assert got["response"] == h(f"{ha1}:n:00000001:c0ffee:auth-int:{ha2}".encode())
    other = compute_response(
        algorithm="SHA-256", username="alice", password="zanzibar", realm="r", nonce="n",
        method="INVITE", uri="sip:bob@b.example", qop="auth-int", cnonce="c0ffee", body=b"",
    )  # fmt: skip
    assert other != got["response"]


def test_rfc2069_without_qop_has_no_cnonce_nc_or_qop() -> None:
    client = credentials("alice", "zanzibar")
    _, value = client.authorize(
        "INVITE", "sip:bob@b.example", challenge_response(401, 'Digest realm="r", nonce="n"')
    )
    got = params(value)
    assert set(got) == {"username", "realm", "nonce", "uri", "response"}
    ha1 = hashlib.md5(b"alice:r:zanzibar").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:bob@b.example").hexdigest()
    assert got["response"] == hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()


@pytest.mark.skipif("SHA-512-256" not in SUPPORTED_ALGORITHMS, reason="no sha512_256 in hashlib")
def test_sha512_256_is_preferred_and_computed() -> None:
    offered = [f'Digest realm="r", nonce="n", qop=auth, algorithm={a}' for a in ("MD5", "SHA-256")]
    offered.append('Digest realm="r", nonce="n", qop=auth, algorithm=SHA-512-256')
    client = credentials("u", "p", cnonce_factory=lambda: "c")
    _, value = client.authorize("BYE", "sip:x@y", challenge_response(401, *offered))
    got = params(value)
    assert got["algorithm"] == "SHA-512-256"

    def h(text: str) -> str:
        return hashlib.new("sha512_256", text.encode()).hexdigest()

    expected = h(f"{h('u:r:p')}:n:00000001:c:auth:{h('BYE:sip:x@y')}")
    assert got["response"] == expected


# --- header names, nonce counts, refusals -------------------------------------------------------


def test_407_answers_with_proxy_authorization_and_401_with_authorization() -> None:
    challenge = 'Digest realm="proxy.example", nonce="n1", qop=auth'
    client = credentials("alice", "zanzibar")
    assert client.authorize("INVITE", "sip:b@x", challenge_response(407, challenge))[0] == (
        "Proxy-Authorization"
    )
    assert client.authorize("INVITE", "sip:b@x", challenge_response(401, challenge))[0] == (
        "Authorization"
    )
    # a 401 carrying only Proxy-Authenticate has nothing for us
    only_proxy = Response(
        401, "Unauthorized", Headers([("CSeq", "1 INVITE"), ("Proxy-Authenticate", challenge)])
    )
    with pytest.raises(DigestError, match=r"401 response has no WWW-Authenticate header"):
        credentials("a", "b").authorize("INVITE", "sip:b@x", only_proxy)


def test_retried_invite_carries_the_header_and_parses() -> None:
    """What the dial-out does: add the header, CSeq+1, new branch; the request stays valid."""
    uri = SipUri.parse("sip:bob@biloxi.example.com")
    body = b"v=0\r\n"
    invite = Request(
        "INVITE",
        uri,
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKfirst"),
                ("From", "<sip:alice@127.0.0.1>;tag=a1"),
                ("To", "<sip:bob@biloxi.example.com>"),
                ("Call-ID", "digest-test@127.0.0.1"),
                ("CSeq", "1 INVITE"),
                ("Max-Forwards", "70"),
                ("Content-Type", "application/sdp"),
            ]
        ),
        body,
    )
    challenge = 'Digest realm="biloxi.example.com", nonce="a\\"b", opaque="", qop="auth"'
    name, value = credentials("alice", 'pa"ss').authorize(
        "INVITE", invite.uri, challenge_response(407, challenge), invite.body
    )
    retry = Request(
        "INVITE",
        invite.uri,
        invite.headers.set("CSeq", "2 INVITE")
        .set("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKsecond")
        .add(name, value),
        invite.body,
    )
    parsed = parse_message(bytes(retry))
    assert parsed.headers.get("Proxy-Authorization") == value
    assert 'nonce="a\\"b"' in value and 'opaque=""' in value


def test_nonce_count_increments_on_reuse_and_restarts_with_a_new_nonce() -> None:
    cnonces = iter(["c1", "c2"])
    client = credentials("alice", "zanzibar", cnonce_factory=lambda: next(cnonces))
    assert client.authorize_again("BYE", "sip:b@x") == []
    challenge = 'Digest realm="r", nonce="n1", qop="auth"'
    _, first = client.authorize("INVITE", "sip:b@x", challenge_response(401, challenge))
    assert (params(first)["nc"], params(first)["cnonce"]) == ("00000001", "c1")
    [(name, again)] = client.authorize_again("BYE", "sip:b@x")
    assert name == "Authorization"
    assert (params(again)["nc"], params(again)["cnonce"]) == ("00000002", "c1")
    assert params(client.authorize_again("BYE", "sip:b@x")[0][1])["nc"] == "00000003"
    expected = compute_response(
        algorithm=None, username="alice", password="zanzibar", realm="r", nonce="n1",
        method="BYE", uri="sip:b@x", qop="auth", nc=2, cnonce="c1",
    )  # fmt: skip
    assert params(again)["response"] == expected
    # the nonce expires: stale=TRUE on the retry, counting starts again
    stale = 'Digest realm="r", nonce="n2", qop="auth", stale=TRUE'
    _, renewed = client.authorize("BYE", "sip:b@x", challenge_response(401, stale, cseq=4))
    assert (params(renewed)["nonce"], params(renewed)["nc"]) == ("n2", "00000001")
    assert params(renewed)["cnonce"] == "c2"


def test_one_header_per_realm_reused() -> None:
    client = credentials("alice", "zanzibar")
    client.authorize("INVITE", "sip:b@x", challenge_response(407, 'Digest realm="p", nonce="1"'))
    client.authorize(
        "INVITE", "sip:b@x", challenge_response(401, 'Digest realm="u", nonce="2"', cseq=2)
    )
    again = client.authorize_again("BYE", "sip:b@x")
    assert [(n, params(v)["realm"]) for n, v in again] == [
        ("Proxy-Authorization", "p"),
        ("Authorization", "u"),
    ]


def test_same_nonce_on_the_retry_means_auth_failed() -> None:
    challenge = 'Digest realm="r", nonce="n1", qop="auth"'
    client = credentials("alice", "wrong")
    client.authorize("INVITE", "sip:b@x", challenge_response(401, challenge, cseq=1))
    with pytest.raises(DigestAuthFailed, match=r"credentials refused for realm 'r'") as caught:
        client.authorize("INVITE", "sip:b@x", challenge_response(401, challenge, cseq=2))
    assert caught.value.realm == "r"
    assert isinstance(caught.value, DigestError)


def test_same_nonce_without_cseq_means_auth_failed() -> None:
    challenge = 'Digest realm="r", nonce="n1"'
    client = credentials("alice", "wrong")
    client.authorize("INVITE", "sip:b@x", challenge_response(401, challenge, with_cseq=False))
    with pytest.raises(DigestAuthFailed, match=r"challenged again with the same nonce"):
        client.authorize("INVITE", "sip:b@x", challenge_response(401, challenge, with_cseq=False))


def test_fresh_nonce_on_the_retry_still_means_auth_failed() -> None:
    """Kamailio and Asterisk send a new nonce with each 401: a wrong password must not loop."""
    client = credentials("alice", "wrong")
    client.authorize(
        "INVITE", "sip:b@x", challenge_response(407, 'Digest realm="r", nonce="n1"', cseq=1)
    )
    with pytest.raises(DigestAuthFailed, match=r"the retry was challenged again"):
        client.authorize(
            "INVITE", "sip:b@x", challenge_response(407, 'Digest realm="r", nonce="n2"', cseq=2)
        )


def test_stale_true_allows_retries_up_to_a_bound() -> None:
    client = DigestClient("alice", "zanzibar", max_stale=2)
    client.authorize(
        "INVITE", "sip:b@x", challenge_response(401, 'Digest realm="r", nonce="n1"', cseq=1)
    )
    for cseq in (2, 3):
        stale = f'Digest realm="r", nonce="n{cseq}", stale=true'
        _, value = client.authorize("INVITE", "sip:b@x", challenge_response(401, stale, cseq=cseq))
        assert params(value)["nonce"] == f"n{cseq}"
    with pytest.raises(DigestAuthFailed, match=r"stale=TRUE 3 times in a row"):
        client.authorize(
            "INVITE",
            "sip:b@x",
            challenge_response(401, 'Digest realm="r", nonce="n4", stale=TRUE', cseq=4),
        )


def test_challenge_to_a_later_request_is_answered_even_with_the_same_nonce() -> None:
    """A BYE sent without credentials, challenged with the nonce the INVITE used."""
    challenge = 'Digest realm="r", nonce="n1", qop=auth'
    client = credentials("alice", "zanzibar", cnonce_factory=lambda: "c1")
    client.authorize("INVITE", "sip:b@x", challenge_response(401, challenge, cseq=1))
    response = challenge_response(401, challenge, cseq=3, method="BYE")
    _, value = client.authorize("BYE", "sip:b@x", response)
    assert params(value)["nc"] == "00000002"  # the nonce goes on; an nc is never reused
    with pytest.raises(DigestAuthFailed):  # ... but the BYE's own retry refused is final
        client.authorize("BYE", "sip:b@x", challenge_response(401, challenge, cseq=4, method="BYE"))


# --- parsing ------------------------------------------------------------------------------------


def test_parser_tolerates_order_case_spaces_and_unquoted_values() -> None:
    [c] = parse_challenges(
        'dIgEsT   ALGORITHM = md5-SESS ,QOP=auth , Nonce=abc/+=,opaque = "o,p" , '
        'Realm="sip.example.com",  stale=True, domain="sip:a.example sip:b.example"'
    )
    assert c == DigestChallenge(
        realm="sip.example.com",
        nonce="abc/+=",
        algorithm="md5-SESS",
        opaque="o,p",
        qop=("auth",),
        stale=True,
        domain=("sip:a.example", "sip:b.example"),
        params=c.params,
    )
    assert c.supported and c.chosen_qop == "auth"
    assert parse_challenges('Digest realm="r", nonce="n", qop=auth,auth-int')[0].qop == (
        "auth",
        "auth-int",
    )
    assert not parse_challenges('Digest realm="r", nonce="n", stale=FALSE')[0].stale


def test_parser_skips_other_schemes_and_splits_several_challenges() -> None:
    value = (
        'Basic realm="x", Negotiate YII=, Digest realm="a", nonce="1", algorithm=SHA-256, '
        'Bearer realm="b", error="invalid_token", Digest realm="a", nonce="2"'
    )
    assert [(c.nonce, c.algorithm) for c in parse_challenges(value)] == [
        ("1", "SHA-256"),
        ("2", None),
    ]
    assert parse_challenges('Basic realm="x"') == []
    with pytest.raises(DigestError, match=r"no Digest challenge we can answer"):
        credentials("a", "b").authorize("INVITE", "sip:b@x", challenge_response(401, "Basic x"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Digest nonce="n"', r"^Digest challenge has no realm$"),
        ('Digest realm="r"', r"^Digest challenge has no nonce$"),
        ('Digest realm="r, nonce="n"', r"unterminated quoted string"),
        ('Digest realm="r", nonce="n", REALM="s"', r"repeats the realm parameter"),
        ('realm="r", Digest nonce="n"', r"comes before a scheme"),
        ('Digest realm="r" nonce="n"', r"unexpected text"),
        ('Digest realm="r", nonce=', r"unexpected text"),
    ],
)
def test_malformed_challenges_raise_digest_error(value: str, message: str) -> None:
    with pytest.raises(DigestError, match=message):
        parse_challenges(value)


def test_unanswerable_challenges() -> None:
    def chosen(*values: str) -> DigestChallenge:
        return select_challenge([c for v in values for c in parse_challenges(v)])

    assert (
        chosen(
            'Digest realm="r", nonce="n", algorithm=AKAv1-MD5',
            'Digest realm="r", nonce="n", algorithm=MD5',
        ).algorithm
        == "MD5"
    )
    for value in (
        'Digest realm="r", nonce="n", algorithm=AKAv1-MD5',
        'Digest realm="r", nonce="n", algorithm=MD5-sess',  # -sess needs a qop for its cnonce
        'Digest realm="r", nonce="n", qop="auth-conf"',
    ):
        with pytest.raises(DigestError, match=r"no Digest challenge we can answer"):
            chosen(value)
    with pytest.raises(DigestError, match=r"a 403 response carries no authentication challenge"):
        credentials("a", "b").authorize("INVITE", "sip:b@x", Response(403, "Forbidden"))
    # one malformed header does not hide a good one
    response = challenge_response(401, 'Digest realm="x', 'Digest realm="r", nonce="n"')
    assert credentials("a", "b").authorize("INVITE", "sip:b@x", response)[0] == "Authorization"


def test_credentials_keep_the_password_out_of_repr() -> None:
    assert "s3cret" not in repr(DigestCredentials("alice", "s3cret"))
    assert "s3cret" not in repr(DigestClient("alice", "s3cret").credentials)
    assert DigestAuthFailed("credentials required, none set").realm is None
    with pytest.raises(ValueError, match=r"CR or LF"):
        DigestCredentials("ali\r\nce", "x")


_FRAGMENTS = st.sampled_from(
    [
        "Digest", "digest ", "Basic", " ", ",", "=", '"', "\\", "realm", "nonce", "qop", "auth",
        "auth-int", "algorithm", "MD5", "sha-256-sess", "stale", "TRUE", "opaque", "domain",
        '"a,b"', "\t", "é", "\x00", "Ω=", "==",
    ]
)  # fmt: skip


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(_FRAGMENTS, max_size=40).map("".join)))
def test_parser_raises_only_digest_error(value: str) -> None:
    try:
        challenges = parse_challenges(value)
    except DigestError:
        return
    for challenge in challenges:
        assert isinstance(challenge.realm, str) and isinstance(challenge.nonce, str)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAGMENTS, max_size=40).map("".join), st.binary(max_size=20))
def test_authorize_raises_only_digest_error(tail: str, body: bytes) -> None:
    value = "Digest " + tail.replace("\r", "").replace("\n", "")
    client = credentials("alice", "zanzibar")
    try:
        name, header = client.authorize("INVITE", "sip:b@x", challenge_response(401, value), body)
    except DigestError:
        return
    assert name == "Authorization"
    Headers([(name, header)])  # a value a SIP header can carry


# --- a real peer: sipp verifying our credentials ------------------------------------------------

requires_sipp = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (apt install sip-tester)"
)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _SippUas:
    """sipp running uas_digest_verify.xml in the foreground (-m 1), and our socket facing it."""

    def __init__(self, tmp: Path, *, qop: str, algorithm: str) -> None:
        assert SIPP is not None
        tmp.mkdir(exist_ok=True)
        self.port = _free_udp_port()
        self.logs = [tmp / "sipp.msg", tmp / "sipp.err", tmp / "sipp.stderr"]
        with self.logs[2].open("wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    SIPP, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(self.port),
                    "-t", "u1", "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error",
                    "-key", "nonce", "6b8b4567/327b23c6=", "-key", "algorithm", algorithm,
                    "-key", "qop_param", f' qop="{qop}",' if qop else "",
                    "-trace_msg", "-message_file", str(self.logs[0]),
                    "-trace_err", "-error_file", str(self.logs[1]),
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )  # fmt: skip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.uri = SipUri.parse(f"sip:bob@127.0.0.1:{self.port}")

    def request(self, method: str, cseq: int, branch: str, to_tag: str | None = None) -> Request:
        local = self.sock.getsockname()[1]
        fields = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{branch}"),
            ("From", "<sip:alice@127.0.0.1>;tag=digest1"),
            ("To", f"<{self.uri}>" + (f";tag={to_tag}" if to_tag else "")),
            ("Call-ID", "digest-call@127.0.0.1"),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
            ("Contact", f"<sip:alice@127.0.0.1:{local}>"),
        ]
        if method != "INVITE":
            return Request(method, self.uri, Headers(fields))
        fields.append(("Content-Type", "application/sdp"))
        return Request(method, self.uri, Headers(fields), b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")

    def send(self, request: Request) -> None:
        self.sock.sendto(bytes(request), ("127.0.0.1", self.port))

    def transact(self, request: Request) -> Response:
        """Send, resending every 0.5 s as Timer A does (sipp may still be starting); <= 10 s."""
        for _ in range(20):
            self.send(request)
            try:
                response = Response.parse(self.sock.recv(65535))
            except TimeoutError:
                continue
            if response.cseq.number == request.cseq.number:
                return response
        raise AssertionError(f"sipp did not answer {request.method}\n{self.log()}")

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.logs if p.exists())

    def close(self) -> int:
        self.sock.close()
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def sipp_uas(tmp_path: Path) -> Iterator[Callable[..., _SippUas]]:
    started: list[_SippUas] = []

    def start(*, qop: str, algorithm: str = "MD5") -> _SippUas:
        started.append(_SippUas(tmp_path / str(len(started)), qop=qop, algorithm=algorithm))
        return started[-1]

    yield start
    for uas in started:  # whatever the test left running
        uas.sock.close()
        if uas.proc.poll() is None:
            uas.proc.kill()
            uas.proc.wait(timeout=5)


def _dial(uas: _SippUas, password: str) -> list[int]:
    """INVITE, answer the 401, and after a 200 a BYE with the credentials reused: the statuses."""
    client = credentials("user", password)
    invite = uas.request("INVITE", 1, "invite1")
    challenge = uas.transact(invite)
    assert challenge.status == 401, uas.log()
    uas.send(uas.request("ACK", 1, "invite1", challenge.to.tag))
    name, value = client.authorize("INVITE", invite.uri, challenge, invite.body)
    retry = uas.request("INVITE", 2, "invite2")
    answer = uas.transact(replace(retry, headers=retry.headers.add(name, value)))
    statuses = [challenge.status, answer.status]
    if answer.status != 200:
        uas.send(uas.request("ACK", 2, "invite2", answer.to.tag))
        return statuses
    uas.send(uas.request("ACK", 2, "ack2", answer.to.tag))
    bye = uas.request("BYE", 3, "bye3", answer.to.tag)
    headers = bye.headers
    for name, value in client.authorize_again("BYE", bye.uri):
        assert "qop" not in params(value) or params(value)["nc"] == "00000002"
        headers = headers.add(name, value)
    statuses.append(uas.transact(replace(bye, headers=headers)).status)
    return statuses


@pytest.mark.integration
@requires_sipp
@pytest.mark.parametrize("qop", ["auth", "auth-int", ""])
def test_sipp_accepts_the_right_password_and_refuses_a_wrong_one(
    sipp_uas: Callable[..., _SippUas], qop: str
) -> None:
    uas = sipp_uas(qop=qop)
    assert _dial(uas, "secret") == [401, 200, 200], uas.log()
    assert uas.close() == 0, uas.log()
    uas = sipp_uas(qop=qop)
    assert _dial(uas, "Secret") == [401, 403], uas.log()
    assert uas.close() == 0, uas.log()


@pytest.mark.integration
@requires_sipp
def test_sipp_verifies_sha256_if_it_can(sipp_uas: Callable[..., _SippUas]) -> None:
    """sipp 3.6.1's verifyauth knows MD5 only (it says so); later ones verify SHA-256 too."""
    uas = sipp_uas(qop="auth", algorithm="SHA-256")
    statuses = _dial(uas, "secret")
    uas.close()
    if statuses == [401, 403] and "must use MD5 or AKAv1-MD5" in uas.log():
        pytest.skip("this sipp's verifyauth cannot check SHA-256")
    assert statuses == [401, 200, 200], uas.log()
