"""SIP/SIPS/tel URI parsing and printing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.uri import AbsoluteUri, SipUri, parse_host, parse_uri

ROUND_TRIP = [
    "sip:alice@atlanta.com",
    "sip:alice:secretword@atlanta.com;transport=tcp",
    "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
    "sip:[2001:db8::10]:5070;lr",
    "sip:[::1]",
    "sip:srs.example.com:5061;transport=tls;maddr=239.255.255.1;ttl=15",
    "tel:+1-201-555-0123;phone-context=example.com",
    "tel:7042",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_rfc3261_examples_round_trip(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert str(uri) == text


def test_components() -> None:
    uri = SipUri.parse("SIP:bob:pw@[2001:db8::1]:5080;transport=TCP;lr;X=1?h=v&i=")
    assert uri == SipUri(
        "[2001:db8::1]",
        user="bob",
        password="pw",
        port=5080,
        params=(("transport", "TCP"), ("lr", None), ("X", "1")),
        headers=(("h", "v"), ("i", "")),
    )
    assert uri.scheme == "sip" and not uri.secure
    assert uri.host_address == "2001:db8::1"
    assert uri.transport == "TCP" and uri.lr
    assert uri.param("x") == "1" and uri.param("LR") == "" and uri.param("nope") is None
    assert uri.has_param("Transport") and not uri.has_param("maddr")
    assert str(uri.with_param("transport", "udp")) == (
        "sip:bob:pw@[2001:db8::1]:5080;transport=udp;lr;X=1?h=v&i="
    )
    assert str(uri.without_param("lr").without_headers()) == (
        "sip:bob:pw@[2001:db8::1]:5080;transport=TCP;X=1"
    )
    assert SipUri.parse("sips:a@b").secure


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=12")
    assert uri == SipUri("", scheme="tel", user="+1-201-555-0123", params=(("ext", "12"),))


def test_escapes_are_kept_and_decoded_once() -> None:
    uri = SipUri.parse("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.user_unescaped == b"sips:user@example.com"
    assert SipUri.parse("sip:%2541@h").user_unescaped == b"%41"  # never recursive
    assert SipUri.parse("sip:h").user_unescaped is None


def test_other_schemes_are_opaque() -> None:
    assert parse_uri("urn:service:sos") == AbsoluteUri("urn", "service:sos")
    assert str(parse_uri("http://www.example.com/x?y")) == "http://www.example.com/x?y"
    with pytest.raises(SipParseError) as info:
        SipUri.parse("http://example.com")
    assert (info.value.status, info.value.reason) == (416, "URI scheme 'http' is not supported")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "URI is empty"),
        ("sip:a b@c", "URI 'sip:a b@c' contains whitespace"),
        ("<sip:a@b>", "URI '<sip:a@b>' has no valid scheme"),
        ("nocolon", "URI 'nocolon' has no valid scheme"),
        ("1sip:a@b", "URI '1sip:a@b' has no valid scheme"),
        ("sip:@host", "URI has an empty user part"),
        ("sip:a<b@host", "URI user 'a<b' is not valid"),
        ("sip:a%4@host", "URI user 'a%4' is not valid"),
        ("sip:a:p@ss@host", "URI host 'ss@host' is not valid"),
        ("sip:a@", "URI has an empty host"),
        ("sip:a@host:99999", "URI port '99999' is not valid"),
        ("sip:a@host:", "URI port '' is not valid"),
        ("sip:a@[::1", "URI host '[::1' has an unterminated IPv6 reference"),
        ("sip:a@[nothex]", "URI host '[nothex]' is not a valid IPv6 reference"),
        ("sip:a@[::1]x", "URI host '[::1]x' is not valid"),
        ("sip:a@host;", "URI has an empty parameter"),
        ("sip:a@host;a=b=c", "URI parameter value 'b=c' is not valid"),
        ("sip:a@host?h", "URI header 'h' has no value"),
        ("sip:a@host?h<=v", "URI header name 'h<' is not valid"),
        ("sip:a@-host-", "URI host '-host-' is not valid"),
        ("tel:xyz;x", "URI telephone number 'xyz' is not valid"),
        ("urn:", "URI 'urn:' is not valid"),
    ],
)
def test_invalid_uris(text: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert (info.value.status, info.value.reason) == (400, reason)


def test_parse_host() -> None:
    assert parse_host("[fe80::1]") == "[fe80::1]"
    assert parse_host("example.com.") == "example.com."
    with pytest.raises(SipParseError, match=r"^URI host 'a b' is not valid$"):
        parse_host("a b")


USER = st.from_regex(r"(?:[a-zA-Z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-F]{2}){1,12}", fullmatch=True)
PARAM = st.from_regex(r"(?:[a-zA-Z0-9\-_.!~*'()\[\]/:&+$]|%[0-9a-f]{2}){1,8}", fullmatch=True)
HVALUE = st.from_regex(r"(?:[a-zA-Z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-F]{2}){0,8}", fullmatch=True)


@settings(max_examples=300)
@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | USER,
    password=st.none() | st.from_regex(r"[a-zA-Z0-9&=+$,]{0,6}", fullmatch=True),
    host=st.sampled_from(["example.com", "10.0.0.1", "[2001:db8::7]", "x"]),
    port=st.none() | st.integers(0, 65535),
    params=st.lists(st.tuples(PARAM, st.none() | PARAM), max_size=3),
    headers=st.lists(st.tuples(PARAM.filter(lambda s: "&" not in s), HVALUE), max_size=2),
)
def test_generated_uris_round_trip(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: list[tuple[str, str | None]],
    headers: list[tuple[str, str]],
) -> None:
    uri = SipUri(
        host,
        scheme=scheme,
        user=user,
        password=password if user is not None else None,
        port=port,
        params=tuple(params),
        headers=tuple(headers),
    )
    assert SipUri.parse(str(uri)) == uri


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_random_text_only_raises_sip_parse_error(text: str) -> None:
    try:
        uri = parse_uri(text)
    except SipParseError:
        return
    assert parse_uri(str(uri)) == uri
