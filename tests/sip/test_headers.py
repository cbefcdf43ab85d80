"""Typed header values: Via, name-addr, CSeq, option tags, session timers, Warning…"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.headers import (
    WILDCARD,
    CSeq,
    MediaType,
    MinSE,
    NameAddr,
    Reason,
    RetryAfter,
    SessionExpires,
    Via,
    Warning,
    canonical_name,
    parse_contacts,
    parse_max_forwards,
    parse_option_tags,
    quote_string,
    split_header_values,
    unquote_string,
)
from sipscribe.sip.uri import AbsoluteUri, SipUri


def test_canonical_names() -> None:
    assert canonical_name("v") == "Via"
    assert canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("min-se") == "Min-SE"
    assert canonical_name("x") == "Session-Expires"
    assert canonical_name("X-Custom-Thing") == "X-Custom-Thing"  # unknown: as given


def test_split_header_values_respects_quotes_and_brackets() -> None:
    value = '"a, \\"b" <sip:x@y;p=1,2>, <sip:z@w> ,c'
    assert split_header_values(value) == ['"a, \\"b" <sip:x@y;p=1,2>', "<sip:z@w>", "c"]
    assert split_header_values("a,,b") == ["a", "", "b"]
    with pytest.raises(SipParseError, match=r"^Contact has an unterminated quoted string$"):
        split_header_values('"open, x', "Contact")


def test_quote_round_trip() -> None:
    assert quote_string('a "b" \\c\x00\x7f\tz') == '"a \\"b\\" \\\\c\\\x00\\\x7f\tz"'
    assert unquote_string(quote_string('a "b" \\c\x00')) == 'a "b" \\c\x00'
    assert unquote_string("plain") == "plain"
    with pytest.raises(ValueError, match=r"cannot contain CR or LF"):
        quote_string("a\r\nb")


# --- Via -----------------------------------------------------------------------------------------


def test_via_parse_and_print() -> None:
    via = Via.parse(
        "SIP / 2.0 / udp  192.0.2.1 : 5060 ;branch=z9hG4bK776;rport ; received=10.0.0.1"
    )
    assert via == Via(
        "UDP",
        "192.0.2.1",
        5060,
        (("branch", "z9hG4bK776"), ("rport", None), ("received", "10.0.0.1")),
    )
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1"
    assert via.branch == "z9hG4bK776" and via.is_rfc3261_branch
    assert via.has_rport and via.rport is None and via.received == "10.0.0.1"
    filled = via.with_param("rport", "40000")
    assert (
        str(filled) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport=40000;received=10.0.0.1"
    )
    assert filled.rport == 40000


def test_via_ipv6_maddr_and_default_ports() -> None:
    via = Via.parse(
        "SIP/2.0/TLS [2001:db8::9];branch=z9hG4bKx;received=2001:db8::1;maddr=[ff02::1]"
    )
    assert via.host == "[2001:db8::9]" and via.port is None
    assert via.received == "2001:db8::1" and via.maddr == "[ff02::1]"
    assert via.sent_by_port == 5061
    assert Via.parse("SIP/2.0/UDP h").sent_by_port == 5060
    assert Via.parse("SIP/2.0/UDP h;branch=z9hG4bK").is_rfc3261_branch is False
    assert Via.parse("SIP/2.0/UDP h;branch=1234").is_rfc3261_branch is False
    assert Via.parse("SIP/2.0/UDP h").branch is None
    assert Via.parse("SIP/2.0/UDP h;rport=x").rport is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("SIP/2.0 host", "Via 'SIP/2.0 host' is not valid"),
        ("SIP/2.0/UDP", "Via 'SIP/2.0/UDP' is not valid"),
        ("SIP/2.0/UDP host:99999", "Via port 99999 exceeds 65535"),
        ("SIP/2.0/UDP host;;", "Via has an empty or invalid parameter"),
        ("SIP/2.0/UDP host junk", "Via has unexpected text 'junk'"),
        ("SIP/2.0/UDP [::g]", "URI host '[::g]' is not a valid IPv6 reference"),
    ],
)
def test_invalid_via(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        Via.parse(text)
    assert info.value.reason == reason


# --- name-addr -----------------------------------------------------------------------------------


def test_name_addr_forms() -> None:
    quoted = NameAddr.parse('"Alice \\"A\\"" <sip:alice@example.com>;tag=88;x="q;v"')
    assert quoted.display_name == 'Alice "A"'
    assert quoted.tag == "88" and quoted.param("x") == "q;v"
    assert str(quoted) == '"Alice \\"A\\"" <sip:alice@example.com>;tag=88;x="q;v"'
    tokens = NameAddr.parse("Bob  Smith <sip:bob@example.com>")
    assert tokens.display_name == "Bob Smith"
    assert str(tokens) == '"Bob Smith" <sip:bob@example.com>'
    bare = NameAddr.parse("sip:carol@example.com;tag=1")
    assert bare.uri == SipUri("example.com", user="carol") and bare.tag == "1"
    assert str(bare) == "<sip:carol@example.com>;tag=1"
    assert NameAddr.parse("<sip:d@e>").display_name is None
    assert NameAddr.parse('"" <sip:d@e>').display_name == ""
    assert NameAddr.parse("<urn:x:y>").uri == AbsoluteUri("urn", "x:y")
    assert NameAddr.parse("<sip:d@e>").with_tag("t1").tag == "t1"
    assert NameAddr.parse("<sip:d@e>;tag=a").with_tag("b").params == (("tag", "b"),)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "To is empty"),
        ('"unterminated <sip:a@b>', "To has an unterminated or invalid quoted display name"),
        ('"name" sip:a@b', "To has a display name without <URI>"),
        ("<sip:a@b", "To has an unterminated <URI>"),
        ("< sip:a@b >", "To URI is not valid: URI ' sip:a@b ' contains whitespace"),
        ("sip:a@b?h=v", "To URI with headers must be enclosed in <>"),
        ("<sip:a@b>;;", "To has an empty or invalid parameter"),
        ("<sip:a@b> x", "To has unexpected text 'x'"),
        ("Bell, A <sip:a@b>", "To URI is not valid: URI 'Bell,' has no valid scheme"),
        ("<urn:>", "To URI is not valid: URI 'urn:' is not valid"),
    ],
)
def test_invalid_name_addr(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        NameAddr.parse(text, header="To")
    assert info.value.reason == reason


def test_parse_contacts() -> None:
    assert parse_contacts(["*"]) is WILDCARD
    assert str(WILDCARD) == "*" and repr(WILDCARD) == "WILDCARD"
    contacts = parse_contacts(["<sip:a@b>, <sip:c@d>", "sip:e@f"])
    assert isinstance(contacts, tuple) and len(contacts) == 3
    with pytest.raises(SipParseError, match=r"^Contact has an empty value$"):
        parse_contacts(["<sip:a@b>,"])


# --- scalar headers ------------------------------------------------------------------------------


def test_cseq_and_max_forwards() -> None:
    assert CSeq.parse(" 0009  INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(4711, "BYE")) == "4711 BYE"
    assert CSeq.parse("4294967295 ACK").number == 2**32 - 1
    with pytest.raises(SipParseError, match=r"^CSeq number 4294967296 exceeds 4294967295$"):
        CSeq.parse("4294967296 ACK")
    with pytest.raises(SipParseError, match=r"^CSeq 'INVITE' is not valid$"):
        CSeq.parse("INVITE")
    assert parse_max_forwards(" 0068 ") == 68
    with pytest.raises(SipParseError, match=r"^Max-Forwards value '-1' is not a number$"):
        parse_max_forwards("-1")


def test_option_tags() -> None:
    assert parse_option_tags(["timer, 100rel", "", "siprec"], "Supported") == (
        "timer",
        "100rel",
        "siprec",
    )
    with pytest.raises(SipParseError, match=r"^Require option tag '' is not a token$"):
        parse_option_tags(["timer,"], "Require")


def test_session_expires_and_min_se() -> None:
    se = SessionExpires.parse("1800 ; refresher = UAC;x=1")
    assert se == SessionExpires(1800, "uac", (("x", "1"),))
    assert str(se) == "1800;refresher=uac;x=1"
    assert SessionExpires.parse("90").refresher is None
    with pytest.raises(SipParseError, match=r"^Session-Expires refresher 'both' is not uac or"):
        SessionExpires.parse("90;refresher=both")
    with pytest.raises(SipParseError, match=r"^Session-Expires interval must not be zero$"):
        SessionExpires.parse("0")
    with pytest.raises(SipParseError, match=r"^Session-Expires interval 'soon' is not a number$"):
        SessionExpires.parse("soon")
    assert MinSE.parse("120") == MinSE(120)
    assert str(MinSE.parse("120;ext")) == "120;ext"


def test_warning_retry_after_reason_media_type() -> None:
    warning = Warning.parse('399 srs.example.com "Bad \\"thing\\""')
    assert warning == Warning(399, "srs.example.com", 'Bad "thing"')
    assert str(warning) == '399 srs.example.com "Bad \\"thing\\""'
    with pytest.raises(
        SipParseError, match=r"^Warning '1812 overture \"In Progress\"' is not valid$"
    ):
        Warning.parse('1812 overture "In Progress"')
    retry = RetryAfter.parse("120 (I'm in a meeting);duration=3600")
    assert retry == RetryAfter(120, "I'm in a meeting", (("duration", "3600"),))
    assert str(retry) == "120 (I'm in a meeting);duration=3600"
    assert RetryAfter.parse("949302838503028349304023988").seconds == 2**32 - 1
    with pytest.raises(SipParseError, match=r"^Retry-After 'later' is not valid$"):
        RetryAfter.parse("later")
    reason = Reason.parse('SIP ;cause=200 ;text="Call completed elsewhere"')
    assert (reason.protocol, reason.cause, reason.text) == ("SIP", 200, "Call completed elsewhere")
    assert str(reason) == 'SIP;cause=200;text="Call completed elsewhere"'
    with pytest.raises(SipParseError, match=r"^Reason '' is not valid$"):
        Reason.parse("")
    media = MediaType.parse('Multipart/Mixed ; boundary="OSS-unique-boundary-42"')
    assert media.mime == "multipart/mixed" and media.param("boundary") == "OSS-unique-boundary-42"
    assert str(media) == 'multipart/mixed;boundary="OSS-unique-boundary-42"'
    with pytest.raises(SipParseError, match=r"^Content-Type 'sdp' is not valid$"):
        MediaType.parse("sdp")


TOKEN = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,10}", fullmatch=True)
DISPLAY = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=15
)
GEN_VALUE = TOKEN | st.builds(quote_string, DISPLAY)


@settings(max_examples=300)
@given(
    display=st.none() | DISPLAY,
    user=st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
    params=st.lists(st.tuples(TOKEN, st.none() | GEN_VALUE), max_size=4),
)
def test_name_addr_round_trip(display: str | None, user: str, params: list) -> None:
    addr = NameAddr(SipUri("example.com", user=user), display, tuple(params))
    assert NameAddr.parse(str(addr)) == addr


@settings(max_examples=300)
@given(
    transport=TOKEN,
    host=st.sampled_from(["h.example", "192.0.2.1", "[::1]"]),
    port=st.none() | st.integers(0, 65535),
    params=st.lists(st.tuples(TOKEN, st.none() | TOKEN), max_size=4),
)
def test_via_round_trip(transport: str, host: str, port: int | None, params: list) -> None:
    via = Via(transport.upper(), host, port, tuple(params))
    assert Via.parse(str(via)) == via


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_random_header_text_only_raises_sip_parse_error(text: str) -> None:
    for parse in (Via.parse, NameAddr.parse, CSeq.parse, SessionExpires.parse, Warning.parse):
        with contextlib.suppress(SipParseError):
            parse(text)
