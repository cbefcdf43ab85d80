"""Message parsing and serialisation, RFC 4475 torture tests, hypothesis fuzzing."""

from __future__ import annotations

import contextlib
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.headers import WILDCARD, CSeq, NameAddr
from sipscribe.sip.message import (
    Headers,
    ParseLimits,
    Request,
    Response,
    make_error_response,
    make_response,
    parse_message,
)
from sipscribe.sip.uri import AbsoluteUri, SipUri

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "sip"

VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason",
    # RFC 4475 §3.1.2 / §3.3 messages a robust UA accepts syntactically:
    "badbranch", "baddate", "bcast", "bext01", "cparam01", "cparam02", "inv2543",
    "regaut01", "regescrt", "unksm2", "zeromf",
]  # fmt: skip

INVALID = [
    ("badinv01", 400, "Via has an empty or invalid parameter"),
    ("clerr", 400, "Content-Length 9999 exceeds the 154 bytes left in the datagram"),
    ("ncl", 400, "Content-Length '-999' is not a number"),
    ("scalar02", 400, "CSeq number 36893488147419103232 exceeds 4294967295"),
    ("scalarlg", 400, "CSeq number 9292394834772304023312 exceeds 4294967295"),
    ("quotbal", 400, "To has an unterminated or invalid quoted display name"),
    (
        "ltgtruri",
        400,
        "Request-URI is not valid: URI '<sip:user@example.com>' has no valid scheme",
    ),
    ("lwsruri", 400, "Request-Line is malformed (expected 'Method SP Request-URI SP SIP/2.0')"),
    ("lwsstart", 400, "Request-Line is malformed (expected 'Method SP Request-URI SP SIP/2.0')"),
    ("trws", 400, "Request-Line is malformed (expected 'Method SP Request-URI SP SIP/2.0')"),
    ("escruri", 400, "Request-URI must not contain headers"),
    ("regbadct", 400, "Contact URI with headers must be enclosed in <>"),
    (
        "badaspec",
        400,
        "To URI is not valid: URI ' sip:t.watson@example.org ' contains whitespace",
    ),
    ("baddn", 400, "From URI is not valid: URI 'Bell,' has no valid scheme"),
    ("badvers", 505, "SIP version SIP/7.0 is not supported"),
    ("mismatch01", 400, "CSeq method INVITE does not match request method OPTIONS"),
    ("mismatch02", 400, "CSeq method INVITE does not match request method NEWMETHOD"),
    ("bigcode", 400, "status code '4294967301' is not valid"),
    ("insuf", 400, "Request is missing the From header"),
    ("mcl01", 400, "message has more than one Content-Length header"),
    ("multi01", 400, "Request has more than one CSeq header"),
    ("novelsc", 416, "Request-URI scheme 'soap.beep' is not supported"),
    ("unkscm", 416, "Request-URI scheme 'nobodyknowsthisscheme' is not supported"),
]

CANONICAL_INVITE = (
    b"INVITE sip:srs@192.0.2.10:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
    b"To: <sip:srs@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.1:5060>\r\n"
    b"Require: siprec\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_corpus_is_complete() -> None:
    names = {path.stem for path in DATA.glob("*.sip")}
    assert names == set(VALID) | {name for name, _, _ in INVALID}


@pytest.mark.parametrize("name", VALID)
def test_valid_torture_messages_parse_and_round_trip(load, name: str) -> None:
    message = parse_message(load(name))
    again = parse_message(bytes(message))
    assert bytes(again) == bytes(message)  # serialisation is a fixed point
    if "Content-Length" in message.headers:
        assert again == message


@pytest.mark.parametrize(("name", "status", "reason"), INVALID)
def test_invalid_torture_messages_raise(load, name: str, status: int, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(load(name))
    assert (info.value.status, str(info.value)) == (status, reason)


def test_canonical_message_round_trips_byte_exact() -> None:
    message = parse_message(CANONICAL_INVITE)
    assert isinstance(message, Request)
    assert bytes(message) == CANONICAL_INVITE
    assert message.require == ("siprec",)


def test_real_siprec_invite() -> None:
    data = (DATA / "opensips-3.6-siprec-invite.txt").read_bytes()
    request = parse_message(data)
    assert isinstance(request, Request)
    assert (request.method, request.require, request.cseq) == (
        "INVITE",
        ("siprec",),
        CSeq(2, "INVITE"),
    )
    assert request.content_type is not None
    assert request.content_type.param("boundary") == "OSS-unique-boundary-42"
    assert len(request.body) == 2367
    assert request.body.endswith(b"</recording>\r\n--OSS-unique-boundary-42--\r\n")
    (contact,) = request.contacts
    assert contact.params == (("+sip.src", None),)
    assert bytes(request) + b"\n" == data  # the file's final newline lies past the body


def test_wsinv_fields(load) -> None:
    request = parse_message(load("wsinv"))
    assert isinstance(request, Request)
    assert request.method == "INVITE"
    assert request.uri == SipUri(
        "chair-dnrc.example.com", user="vivekg", params=(("unknownparam", None),)
    )
    assert request.to.uri == SipUri("chair-dnrc.example.com", user="vivekg")
    assert request.to.tag == "1918181833n"
    assert request.from_.display_name == 'J Rosenberg \\"'
    assert request.from_.tag == "98asjd8"
    assert request.max_forwards == 68
    assert (request.cseq.number, request.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in request.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert request.headers.get("Subject") == ""
    assert request.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert request.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = request.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    (route,) = request.route
    assert isinstance(route.uri, SipUri) and route.uri.lr
    assert [name for name, _ in request.headers][:4] == ["To", "From", "Max-Forwards", "Call-ID"]
    assert len(request.body) == 150


def test_intmeth_fields(load) -> None:
    request = parse_message(load("intmeth"))
    assert isinstance(request, Request)
    assert request.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert request.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert request.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert request.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert request.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert request.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert request.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert request.from_.tag == "_token~1'+`*%!-."
    assert request.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert request.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    # The display name's control characters survive as quoted-pairs.
    assert b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:' in bytes(request)


def test_escaped_uris(load) -> None:
    esc01 = parse_message(load("esc01"))
    assert isinstance(esc01, Request)
    assert esc01.uri.user == "sips%3Auser%40example.com"
    assert esc01.uri.user_unescaped == b"sips:user@example.com"
    assert isinstance(esc01.to.uri, SipUri) and esc01.to.uri.user_unescaped == b"user"
    (contact,) = esc01.contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    escnull = parse_message(load("escnull"))
    assert [c.uri.user_unescaped for c in escnull.contacts] == [b"\x00", b"\x00\x00"]
    assert escnull.from_.uri.user_unescaped == b"null-\x00-null"


def test_percent_is_not_an_escape_outside_uris(load) -> None:
    request = parse_message(load("esc02"))
    assert isinstance(request, Request)
    assert request.method == "RE%47IST%45R"
    assert request.to.display_name == "%Z%45"
    assert [c.uri.user for c in request.contacts] == ["alias1", "alias3"]
    assert request.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_assorted_valid_torture_details(load) -> None:
    assert parse_message(load("lwsdisp")).from_.display_name == "caller"
    longreq = parse_message(load("longreq"))
    assert len(longreq.via) == 34
    assert longreq.via[0].host == "sip33.example.com"
    assert longreq.via[-1].received == "192.0.2.5"
    assert longreq.to.uri.port == 6000
    dblreq = parse_message(load("dblreq"))
    assert isinstance(dblreq, Request) and dblreq.method == "REGISTER" and dblreq.body == b""
    semiuri = parse_message(load("semiuri"))
    assert semiuri.uri.user == "user;par=u%40example.net" and semiuri.uri.host == "example.com"
    assert len(semiuri.headers.values("Accept")) == 6
    transports = parse_message(load("transports"))
    assert [v.transport for v in transports.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, Response)
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parse_message(load("noreason"))
    assert isinstance(noreason, Response) and (noreason.status, noreason.reason) == (100, "")
    zeromf = parse_message(load("zeromf"))
    assert zeromf.max_forwards == 0
    badbranch = parse_message(load("badbranch"))
    assert badbranch.top_via.branch == "z9hG4bK" and not badbranch.top_via.is_rfc3261_branch


def test_headers_that_are_never_comma_split(load) -> None:
    baddate = parse_message(load("baddate"))
    assert baddate.headers.values("Date") == ["Fri, 01 Jan 2010 16:00:00 EST"]
    regaut = parse_message(load("regaut01"))
    assert regaut.headers.values("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]
    www = parse_message(
        CANONICAL_INVITE.replace(
            b"Require: siprec\r\n",
            b'WWW-Authenticate: Digest realm="a, b", nonce="x"\r\n',
        )
    )
    assert www.headers.values("WWW-Authenticate") == ['Digest realm="a, b", nonce="x"']


def test_contact_params_versus_uri_params(load) -> None:
    (c1,) = parse_message(load("cparam01")).contacts
    assert c1.params == (("unknownparam", None),) and c1.uri.params == ()
    (c2,) = parse_message(load("cparam02")).contacts
    assert c2.params == () and c2.uri.params == (("unknownparam", None),)
    (c3,) = parse_message(load("regescrt")).contacts
    assert c3.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_unknown_uri_schemes_in_headers(load) -> None:
    request = parse_message(load("unksm2"))
    assert request.to.uri == AbsoluteUri("isbn", "2983792873")
    assert request.from_.uri == AbsoluteUri("http", "//www.example.com")
    assert request.contacts == (NameAddr(AbsoluteUri("name", "John_Smith")),)


def test_mpart01_binary_body_is_kept_exactly(load) -> None:
    data = load("mpart01")
    request = parse_message(data)
    assert request.body == data.partition(b"\r\n\r\n")[2]
    assert b"\x00" in request.body
    assert request.content_type is not None
    assert request.content_type.mime == "multipart/mixed"
    assert request.content_type.param("boundary") == "7a9cbec02ceef655"


def test_rfc2543_message_without_content_length_takes_rest_of_datagram(load) -> None:
    request = parse_message(load("inv2543"))
    assert request.body.startswith(b"v=0\r\n") and len(request.body) == 105
    assert request.from_.tag is None and request.max_forwards is None
    with pytest.raises(SipParseError, match=r"Content-Length is required on stream transports"):
        parse_message(load("inv2543"), stream=True)


def test_compact_header_forms() -> None:
    data = (
        b"MESSAGE sip:a@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h.example.com;branch=z9hG4bKc\r\n"
        b"f: <sip:b@example.com>;tag=1\r\nt: <sip:a@example.com>\r\ni: cid\r\n"
        b"CSeq: 1 MESSAGE\r\nm: <sip:b@h.example.com>\r\nk: timer, 100rel\r\n"
        b"s: hello\r\no: presence\r\nu: dialog\r\nr: <sip:c@example.com>\r\n"
        b"x: 1800;refresher=uas\r\ne: gzip\r\nc: text/plain\r\nl: 2\r\n\r\nhi"
    )
    request = parse_message(data)
    names = [name for name, _ in request.headers]
    assert names == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Supported", "Subject", "Event",
        "Allow-Events", "Refer-To", "Session-Expires", "Content-Encoding", "Content-Type",
        "Content-Length",
    ]  # fmt: skip
    assert request.supported == ("timer", "100rel")
    assert request.session_expires is not None and request.session_expires.refresher == "uas"
    assert bytes(request).startswith(b"MESSAGE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP")
    assert b"\r\nContent-Length: 2\r\n\r\nhi" in bytes(request)


def test_contact_wildcard() -> None:
    data = CANONICAL_INVITE.replace(b"Contact: <sip:alice@192.0.2.1:5060>", b"Contact: *")
    assert parse_message(data).contacts is WILDCARD
    mixed = CANONICAL_INVITE.replace(b"<sip:alice@192.0.2.1:5060>", b"*, <sip:a@b>")
    with pytest.raises(SipParseError, match=r"^Contact \* must be the only Contact value$"):
        parse_message(mixed)


def test_multiple_contacts_split_outside_quotes_and_brackets() -> None:
    data = CANONICAL_INVITE.replace(
        b"Contact: <sip:alice@192.0.2.1:5060>",
        b'Contact: "Doe, John" <sip:j,k@a.example;x=1>, sip:k@b.example;q=0.5',
    )
    contacts = parse_message(data).contacts
    assert isinstance(contacts, tuple)
    assert [c.display_name for c in contacts] == ["Doe, John", None]
    assert contacts[0].uri.user == "j,k" and contacts[0].uri.params == (("x", "1"),)
    assert contacts[1].params == (("q", "0.5"),)


# --- limits and framing faults -------------------------------------------------------------------


def test_message_size_limit_gives_413() -> None:
    limits = ParseLimits(max_message_size=100)
    with pytest.raises(SipParseError) as info:
        parse_message(CANONICAL_INVITE, limits=limits)
    assert (info.value.status, info.value.reason) == (413, "message exceeds 100 bytes")


def test_long_request_line_gives_414_and_long_header_400() -> None:
    limits = ParseLimits(max_line_length=64)
    long_uri = CANONICAL_INVITE.replace(b"sip:srs@", b"sip:" + b"s" * 80 + b"@", 1)
    with pytest.raises(SipParseError) as info:
        parse_message(long_uri, limits=limits)
    assert (info.value.status, info.value.reason) == (414, "start line exceeds 64 bytes")
    long_header = CANONICAL_INVITE.replace(b"Require: siprec", b"X-Long: " + b"a" * 80)
    with pytest.raises(SipParseError, match=r"^header line exceeds 64 bytes$"):
        parse_message(long_header, limits=limits)


def test_header_count_limit() -> None:
    extra = b"".join(b"X-H%d: v\r\n" % i for i in range(300))
    data = CANONICAL_INVITE.replace(b"Require: siprec\r\n", extra)
    with pytest.raises(SipParseError, match=r"^message has more than 256 header fields$"):
        parse_message(data)
    assert len(parse_message(data, limits=ParseLimits(max_headers=400)).headers) == 309


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "message has no empty line ending the header section"),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: x",
         "message has no empty line ending the header section"),
        (CANONICAL_INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n"),
         "header section contains a bare CR or LF"),
        (CANONICAL_INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards 70"),
         "header line 'Max-Forwards 70' has no valid name and colon"),
        (CANONICAL_INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: x"),
         "Max-Forwards value 'x' is not a number"),
        (CANONICAL_INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"),
         "Max-Forwards value 256 exceeds 255"),
        (CANONICAL_INVITE.replace(b'"Alice"', b'"Al\xffce"'), "From header is not valid UTF-8"),
        (CANONICAL_INVITE.replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n continued\r\n", 1),
         "header section starts with a continuation line"),
        (CANONICAL_INVITE.replace(b"INVITE sip", b"INV(TE sip", 1),
         "method 'INV(TE' is not a token"),
        (CANONICAL_INVITE.replace(b" SIP/2.0\r\n", b" SIP/2\r\n", 1),
         "SIP version 'SIP/2' is not valid"),
        (CANONICAL_INVITE.replace(b"Call-ID: a84b", b"Call-ID: a8 4b"),
         "Call-ID 'a8 4b4c76e66710@pc33.example.com' is not valid"),
        (CANONICAL_INVITE.replace(b"Require: siprec", b"Require: sip rec"),
         "Require option tag 'sip rec' is not a token"),
    ],
)  # fmt: skip
def test_malformed_messages(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.reason == reason
    assert info.value.status == 400


def test_stream_mode_content_length_rules() -> None:
    assert parse_message(CANONICAL_INVITE, stream=True).body == b"v=0\n"
    with pytest.raises(SipParseError, match=r"^stream message has 2 bytes after its body$"):
        parse_message(CANONICAL_INVITE + b"xx", stream=True)
    with pytest.raises(
        SipParseError, match=r"^Content-Length 4 exceeds the 2 bytes left in the stream message$"
    ):
        parse_message(CANONICAL_INVITE[:-2], stream=True)
    # On a datagram, octets after the body are ignored (RFC 3261 §18.3).
    assert parse_message(CANONICAL_INVITE + b"junk").body == b"v=0\n"


def test_leading_crlfs_are_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + CANONICAL_INVITE) == parse_message(CANONICAL_INVITE)


def test_request_and_response_parse_check_the_kind(load) -> None:
    with pytest.raises(SipParseError, match=r"^expected a request, got a response$"):
        Request.parse(load("noreason"))
    with pytest.raises(SipParseError, match=r"^expected a response, got a request$"):
        Response.parse(CANONICAL_INVITE)
    assert Response.parse(load("noreason")).status == 100
    assert Request.parse(CANONICAL_INVITE).method == "INVITE"


# --- Headers and serialisation -------------------------------------------------------------------


def test_headers_container() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("call-id", "x")])
    assert list(headers) == [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("Call-ID", "x")]
    assert "VIA" in headers and "i" in headers and "To" not in headers and 3 not in headers
    headers = headers.add_first("Via", "SIP/2.0/TCP b;branch=z9hG4bK2").add("Supported", "timer")
    assert headers.get_all("via") == [
        "SIP/2.0/TCP b;branch=z9hG4bK2",
        "SIP/2.0/UDP a;branch=z9hG4bK1",
    ]
    assert headers.set("Via", "one").get_all("Via") == ["one"]
    assert next(iter(headers.set("Via", "one"))) == ("Via", "one")
    assert headers.set("Expires", "5").get("Expires") == "5"
    assert "Via" not in headers.remove("v")
    assert headers.get("Nope", "dflt") == "dflt"
    assert Headers([("A", "1")]) == Headers([("A", "1")])
    assert hash(Headers([("A", "1")])) == hash(Headers([("A", "1")]))
    assert len(headers) == 4 and bool(headers) and not Headers()
    with pytest.raises(ValueError, match=r"is not a token"):
        Headers([("Bad Name", "x")])
    with pytest.raises(ValueError, match=r"must not contain CR or LF"):
        Headers([("X", "a\r\nInjected: 1")])


def test_serialisation_writes_correct_content_length() -> None:
    request = Request(
        "OPTIONS",
        SipUri("example.com"),
        Headers([("Content-Length", "999"), ("Call-ID", "x"), ("Content-Length", "1")]),
        b"abc",
    )
    assert bytes(request) == (
        b"OPTIONS sip:example.com SIP/2.0\r\nContent-Length: 3\r\nCall-ID: x\r\n\r\nabc"
    )
    response = Response(200, "OK", Headers([("Call-ID", "x")]))
    assert bytes(response) == b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"


# --- building responses --------------------------------------------------------------------------


def test_make_response_copies_headers_per_8_2_6() -> None:
    request = parse_message(
        CANONICAL_INVITE.replace(
            b"Max-Forwards: 70\r\n",
            b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\nTimestamp: 54\r\n",
        )
    )
    assert isinstance(request, Request)
    ok = make_response(request, 200, to_tag="t1", headers=[("Contact", "<sip:srs@192.0.2.10>")])
    assert bytes(ok) == (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
        b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\n"
        b'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
        b"To: <sip:srs@example.com>;tag=t1\r\n"
        b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Contact: <sip:srs@192.0.2.10>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    trying = make_response(request, 100, to_tag="t1")
    assert trying.to.tag is None  # never a tag on 100 (§8.2.6.2)
    assert trying.headers.get("Timestamp") == "54"  # echoed on 100 (§8.2.6.1)
    assert make_response(request, 486).reason == "Busy Here"
    assert make_response(request, 299).reason == ""
    custom = make_response(request, 200, "Fine", body=b"x", content_type="text/plain")
    assert (custom.reason, custom.body, custom.headers.get("Content-Type")) == (
        "Fine",
        b"x",
        "text/plain",
    )
    tagged = parse_message(
        CANONICAL_INVITE.replace(b"<sip:srs@example.com>", b"<sip:srs@example.com>;tag=old")
    )
    assert isinstance(tagged, Request)
    assert make_response(tagged, 200, to_tag="new").to.tag == "old"
    with pytest.raises(ValueError, match=r"is not a SIP status code"):
        make_response(request, 700)
    with pytest.raises(ValueError, match=r"is not a token"):
        make_response(request, 200, to_tag="bad tag")


def test_make_error_response_for_unparseable_requests(load) -> None:
    error = SipParseError('Via has "odd" stuff\x00', status=400)
    response = make_error_response(load("badinv01"), error, agent="srs.example", to_tag="e1")
    assert response is not None
    assert response.status == 400 and response.reason == "Bad Request"
    assert response.headers.get("Warning") == '399 srs.example "Via has \\"odd\\" stuff "'
    assert response.headers.get("To") == "sip:j.user@example.com;tag=e1"
    assert response.headers.get_all("Via") == ["SIP/2.0/UDP 192.0.2.15;;,;,,"]
    # Responses, ACKs and requests missing the §8.2.6 headers are not answered.
    assert make_error_response(load("bigcode"), error, agent="a", to_tag="t") is None
    assert make_error_response(load("insuf"), error, agent="a", to_tag="t") is None
    ack = CANONICAL_INVITE.replace(b"INVITE sip", b"ACK sip", 1)
    assert make_error_response(ack, error, agent="a", to_tag="t") is None
    assert make_error_response(b"\x00\x01garbage", error, agent="a", to_tag="t") is None
    folded = load("wsinv")
    answered = make_error_response(folded, SipParseError("x", status=413), agent="a", to_tag="t")
    assert answered is not None and answered.status == 413
    assert answered.headers.get("CSeq") == "0009 INVITE"
    assert (
        answered.headers.get("To") == "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    )


# --- hypothesis ----------------------------------------------------------------------------------

CORPUS = [path.read_bytes() for path in sorted(DATA.glob("*.sip"))] + [CANONICAL_INVITE]


def _exercise(message: Request | Response) -> None:
    """Touch every lazily parsed accessor: they may only raise SipParseError."""
    for accessor in ("warnings", "reasons", "retry_after", "allow", "unsupported"):
        with contextlib.suppress(SipParseError):
            getattr(message, accessor)
    bytes(message)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_only_raise_sip_parse_error(data: bytes, stream: bool) -> None:
    try:
        message = parse_message(data, stream=stream)
    except SipParseError:
        return
    _exercise(message)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup", "special"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
        else:
            special = [
                b";",
                b",",
                b'"',
                b"<",
                b">",
                b"\\",
                b"\r\n",
                b" ",
                b":",
                b"%",
                b"@",
                b"[",
                b"\x00",
            ]
            data[pos:pos] = draw(st.sampled_from(special))
    return bytes(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.booleans())
def test_mutated_messages_only_raise_sip_parse_error(data: bytes, stream: bool) -> None:
    try:
        message = parse_message(data, stream=stream)
    except SipParseError:
        return
    _exercise(message)
    assert bytes(parse_message(bytes(message))) == bytes(message)


TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
URI_PARAM = st.from_regex(r"[a-zA-Z0-9\-_.!~*'()\[\]/:&+$]{1,10}", fullmatch=True)
HOST = st.sampled_from(["example.com", "192.0.2.1", "[2001:db8::1]", "a.b-c.example", "h"])
DISPLAY = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    return SipUri(
        host=draw(HOST),
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=draw(
            st.none() | st.from_regex(r"[a-zA-Z0-9\-_.!~*'()&=+$,;?/]{1,10}", fullmatch=True)
        ),
        port=draw(st.none() | st.integers(1, 65535)),
        params=tuple(draw(st.lists(st.tuples(URI_PARAM, st.none() | URI_PARAM), max_size=3))),
    )


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(TOKEN)
    from_ = NameAddr(draw(sip_uris()), draw(st.none() | DISPLAY), (("tag", draw(TOKEN)),))
    to = NameAddr(draw(sip_uris()), draw(st.none() | DISPLAY))
    fields = [
        (
            "Via",
            f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS']))} {draw(HOST)}"
            f";branch=z9hG4bK{draw(TOKEN)}",
        ),
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", draw(TOKEN) + "@" + draw(TOKEN)),
        ("CSeq", f"{draw(st.integers(0, 2**32 - 1))} {method}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
    ]
    for _ in range(draw(st.integers(0, 3))):
        fields.append(
            ("X-" + draw(TOKEN), draw(st.from_regex(r"[ -~]{0,30}", fullmatch=True)).strip())
        )
    body = draw(st.binary(max_size=64))
    return Request(method, draw(sip_uris()), Headers(fields), body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_requests_round_trip(request: Request) -> None:
    parsed = parse_message(bytes(request))
    assert isinstance(parsed, Request)
    assert bytes(parsed) == bytes(request)
    assert (parsed.method, parsed.uri, parsed.body) == (request.method, request.uri, request.body)
    assert parsed.from_ == request.from_ and parsed.to == request.to
    assert parsed.cseq == request.cseq
