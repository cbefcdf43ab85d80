"""RFC 7865 metadata: the real OpenSIPS document, vendor dialects, partial updates, attacks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.siprec.metadata import (
    MAX_METADATA_SIZE,
    CommunicationSession,
    Group,
    MediaStream,
    MetadataError,
    NameId,
    Participant,
    ParticipantSessionAssoc,
    ParticipantStreamAssoc,
    RecordingMetadata,
    SessionRecordingAssoc,
    XmlNode,
    merge_metadata,
    parse_metadata,
    parse_metadata_time,
)
from sipscribe.siprec.multipart import parse_recording_body

NS = "urn:ietf:params:xml:ns:recording:1"
APKT = "http://acmepacket.com/siprec/extensiondata"


def metadata_of(invite: Callable[[str], Any], name: str) -> bytes:
    message = invite(name)
    xml = parse_recording_body(message.body, message.content_type).metadata
    assert xml is not None
    return xml


def doc(*children: str, ns: str = NS) -> bytes:
    return f"<recording xmlns='{ns}'>{''.join(children)}</recording>".encode()


# ---------------------------------------------------------------------------- real capture


def test_opensips_metadata_exactly(invite: Callable[[str], Any]) -> None:
    meta = parse_metadata(metadata_of(invite, "opensips-3.6-rtpengine-invite.txt"))
    session = "0DZPr5MzQ4O8gUnUGWk6/g=="
    alice, bob = "MJGH3j0zRaCj9bDqCOx/+g==", "F+xLRWfWTq+M5ZJvHBB5iQ=="
    s1, s0 = "TKzmRsJKRheWgt+9j+7fGg==", "qesDf6okSeCTY38FPnQ/BQ=="
    at = datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)
    assert meta == RecordingMetadata(
        datamode="complete",
        groups={"test-group": Group("test-group")},
        sessions={
            session: CommunicationSession(
                session, sip_session_ids=("1-26773@127.0.0.1",), group_ref="test-group"
            )
        },
        participants={
            alice: Participant(alice, (NameId("sip:alice@example.com", ("Alice",)),)),
            bob: Participant(bob, (NameId("sip:bob@example.net", ("Bob",)),)),
        },
        streams={
            s1: MediaStream(s1, session_ref=session, label="1"),
            s0: MediaStream(s0, session_ref=session, label="0"),
        },
        session_recording_assocs={session: SessionRecordingAssoc(session, associate_time=at)},
        participant_session_assocs={
            (alice, session): ParticipantSessionAssoc(alice, session, associate_time=at),
            (bob, session): ParticipantSessionAssoc(bob, session, associate_time=at),
        },
        participant_stream_assocs={
            alice: ParticipantStreamAssoc(alice, send=(s1,), recv=(s0,)),
            bob: ParticipantStreamAssoc(bob, send=(s0,), recv=(s1,)),
        },
    )
    stream = meta.stream_by_label("1")
    assert stream is not None and meta.senders(stream.id) == (alice,)
    assert meta.receivers(stream.id) == (bob,)
    assert meta.participants[alice].aor == "sip:alice@example.com"
    assert meta.participants[alice].name == "Alice"
    assert meta.is_active(alice) and meta.is_active(bob)
    assert meta.sip_session_ids == ("1-26773@127.0.0.1",)


# ---------------------------------------------------------------------------- dialects


def test_oracle_draft_format(invite: Callable[[str], Any]) -> None:
    meta = parse_metadata(metadata_of(invite, "oracle-sbc-invite.txt"))
    caller, callee = "jXXFR+0mQ1RPK5QGlWUprQ==", "wpjlMwVqTUZSI2tmcXkZFg=="
    session_id = "jWBTU+dDQeZL6U3Gdk6Cwg=="
    at = datetime(2025, 11, 20, 15, 21, 7, tzinfo=UTC)  # no zone in the document: UTC
    # send inside participant, the draft way, becomes a participantstreamassoc
    assert meta.participant_stream_assocs == {
        caller: ParticipantStreamAssoc(caller, send=("goO9dQk7T/VclQNR6C6nrw==",)),
        callee: ParticipantStreamAssoc(callee, send=("Rg+mboP0TOpzFgtWlWVeUQ==",)),
    }
    assert meta.participant_session_assocs[(caller, session_id)] == ParticipantSessionAssoc(
        caller, session_id, associate_time=at
    )
    assert meta.participants[caller].session_ref == session_id
    assert meta.participants[caller].name == '"WIRELESS CALLER"'
    assert meta.streams["goO9dQk7T/VclQNR6C6nrw=="].mode == "separate"
    assert meta.streams["goO9dQk7T/VclQNR6C6nrw=="].label == "553654187"
    session = meta.sessions[session_id]
    assert session.associate_time == at
    # extensiondata kept whole, with the (mistyped) namespace the SBC really sends
    (extension,) = session.extensions
    assert extension.local == "extensiondata"
    assert [(c.namespace, c.local, c.text) for c in extension.children] == [
        (
            "http:/acmepacket.com/siprec/extensiondata",
            "ucid",
            "00FA080018803B69810C6D;encoding=hex",
        ),
        ("http:/acmepacket.com/siprec/extensiondata", "callerOrig", "true"),
    ]
    assert extension.to_xml() == (
        '<extensiondata xmlns="urn:ietf:params:xml:ns:recording" '
        'xmlns:apkt="http:/acmepacket.com/siprec/extensiondata">'
        "<apkt:ucid>00FA080018803B69810C6D;encoding=hex</apkt:ucid>"
        "<apkt:callerOrig>true</apkt:callerOrig></extensiondata>"
    )
    (participant_ext,) = meta.participants[caller].extensions
    flag = participant_ext.find("callingParty")
    assert flag is not None and (flag.namespace, flag.text) == (APKT, "true")


def test_avaya_id_spellings_and_several_name_ids(invite: Callable[[str], Any]) -> None:
    meta = parse_metadata(metadata_of(invite, "avaya-sbce-invite.txt"))
    customer, agent = "2b0Xc7JcQ9eJq1rYb6kG2w==", "Hk5y4n9YQ0OQ3mF8H2bq5A=="
    session = "hVq0l6mFQ5mRp1m0dcq9Jw=="
    assert meta.participants[customer].name_ids == (
        NameId("sip:+13125550199@sbce.example.com", ("+13125550199",)),
        NameId("tel:+13125550199", ()),
    )
    assert meta.participants[customer].aors == (
        "sip:+13125550199@sbce.example.com",
        "tel:+13125550199",
    )
    assert meta.participants[agent].name == "Agent Smith"
    assert meta.groups["7+J2mYxnRK2hx0m2bJmC1A=="].associate_time == datetime(
        2025, 11, 20, 16, 47, 14, 203000, tzinfo=UTC
    )
    assert meta.sessions[session].group_ref == "7+J2mYxnRK2hx0m2bJmC1A=="
    assert meta.session_recording_assocs[session].associate_time is not None
    assert set(meta.participant_session_assocs) == {(customer, session), (agent, session)}
    assert meta.participant_stream_assocs[agent].send == ("m1O1h2bLSfG0Xkq0v0yq0w==",)
    assert meta.streams["m1O1h2bLSfG0Xkq0v0yq0w=="].session_ref == session


def test_no_namespace_and_streamid(invite: Callable[[str], Any]) -> None:
    meta = parse_metadata(metadata_of(invite, "freeswitch-mixed-invite.txt"))
    assert list(meta.streams) == ["s-mixed"]
    assert meta.senders("s-mixed") == ("p-caller", "p-callee")
    assert meta.sessions["6f0b0c8e-33c4-4bda-9b52-fb1b3e0d2a77"].start_time == datetime(
        2025, 11, 20, 17, 5, 44, 512930, tzinfo=UTC
    )


@pytest.mark.parametrize("ns", [NS, "urn:ietf:params:xml:ns:recording", ""])
def test_all_three_namespaces(ns: str) -> None:
    xml = doc("<participant participant_id='p'><nameID aor='sip:a@b'/></participant>", ns=ns)
    if not ns:
        xml = xml.replace(b" xmlns=''", b"")
    assert parse_metadata(xml).participants["p"].aor == "sip:a@b"


def test_rfc_and_draft_attribute_spellings_agree() -> None:
    rfc = parse_metadata(
        doc(
            "<group group_id='g'/>",
            "<session session_id='s'><group-ref>g</group-ref></session>",
            "<participant participant_id='p'/>",
            "<stream stream_id='x' session_id='s'><label>7</label></stream>",
            "<participantsessionassoc participant_id='p' session_id='s'/>",
            "<participantstreamassoc participant_id='p'><send>x</send></participantstreamassoc>",
            "<sessionrecordingassoc session_id='s'/>",
        )
    )
    draft = parse_metadata(
        doc(
            "<group id='g'/>",
            "<session id='s'><group-ref>g</group-ref></session>",
            "<participant id='p'/>",
            "<stream id='x' session='s'><label>7</label></stream>",
            "<participantsessionassoc participant='p' session='s'/>",
            "<participantstreamassoc id='p'><send>x</send></participantstreamassoc>",
            "<sessionrecordingassoc id='s'/>",
        )
    )
    assert rfc == draft


def test_repeated_elements_in_one_document_add_up() -> None:
    meta = parse_metadata(
        doc(
            "<participant participant_id='p'><send>a</send></participant>",
            "<participantstreamassoc participant_id='p'><send>b</send><recv>c</recv>"
            "</participantstreamassoc>",
            "<participant participant_id='p'><nameID aor='sip:p@x'/></participant>",
        )
    )
    assert meta.participant_stream_assocs["p"] == ParticipantStreamAssoc("p", ("a", "b"), ("c",))
    assert meta.participants["p"].aor == "sip:p@x"


def test_extensions_at_every_level_and_foreign_children() -> None:
    meta = parse_metadata(
        doc(
            "<extensiondata xmlns:v='urn:example:v'><v:tenant>t1</v:tenant></extensiondata>",
            "<v:direct xmlns:v='urn:example:v' v:kind='a'>x</v:direct>",
            "<stream stream_id='s'><label>1</label>"
            "<extensiondata xmlns:v='urn:example:v'><v:codec>opus</v:codec></extensiondata>"
            "</stream>",
            "<futureelement>ignored</futureelement>",
        )
    )
    assert [e.local for e in meta.extensions] == ["extensiondata", "direct"]
    direct = meta.extensions[1]
    assert direct.attribute("kind") == "a"
    assert direct.to_xml() == '<v:direct xmlns:v="urn:example:v" v:kind="a">x</v:direct>'
    codec = meta.streams["s"].extensions[0].find("codec")
    assert codec is not None and codec.text == "opus"


def test_xml_node_serialises_unknown_prefixes() -> None:
    node = XmlNode("{urn:a}x", (("{urn:b}y", "1"),), "t", (XmlNode("plain"),))
    assert node.to_xml() == '<ns:x xmlns:ns="urn:a" xmlns:ns0="urn:b" ns0:y="1">t<plain/></ns:x>'


def test_datamode() -> None:
    assert parse_metadata(doc()).datamode == "complete"
    assert parse_metadata(doc("<datamode> Partial </datamode>")).datamode == "partial"


def test_str_input_and_utf8() -> None:
    meta = parse_metadata(
        "<recording><participant participant_id='p'><nameID aor='sip:z@x'>"
        "<name>Zoë</name></nameID></participant></recording>"
    )
    assert meta.participants["p"].name == "Zoë"


# ---------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T00:03:38+0000", datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)),
        ("2026-11-22T00:03:38+00:00", datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)),
        ("2026-11-22T00:03:38Z", datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)),
        ("2026-11-22T00:03:38z", datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)),
        ("2026-11-22T00:03:38+00", datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)),
        ("2026-11-22T00:03:38", datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)),
        ("2026-11-22 00:03:38.5Z", datetime(2026, 11, 22, 0, 3, 38, 500000, tzinfo=UTC)),
        ("2015-11-09T09:42:11.811Z", datetime(2015, 11, 9, 9, 42, 11, 811000, tzinfo=UTC)),
        ("2025-11-20T17:05:44.512930123Z", datetime(2025, 11, 20, 17, 5, 44, 512930, tzinfo=UTC)),
        (
            "2025-11-20T10:00:00+05:30",
            datetime(2025, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        (
            "2025-11-20T10:00:00-0800",
            datetime(2025, 11, 20, 10, 0, tzinfo=timezone(-timedelta(hours=8))),
        ),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (" 2026-11-22T00:03:38Z\n", datetime(2026, 11, 22, 0, 3, 38, tzinfo=UTC)),
    ],
)
def test_times(text: str, expected: datetime) -> None:
    parsed = parse_metadata_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "metadata time 'yesterday' is not an RFC 3339 time"),
        ("2025-13-01T00:00:00Z", "metadata time '2025-13-01T00:00:00Z' is not a valid date"),
        (
            "2025-11-20T10:00:00+2400",
            "metadata time '2025-11-20T10:00:00+2400' has an invalid offset",
        ),
        (
            "2025-11-20T10:00+00:00",
            "metadata time '2025-11-20T10:00+00:00' is not an RFC 3339 time",
        ),
    ],
)
def test_time_errors(text: str, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata_time(text)
    assert str(caught.value) == message


def test_bad_time_in_document_names_it() -> None:
    with pytest.raises(MetadataError, match=r"^metadata time 'soon' is not an RFC 3339 time$"):
        parse_metadata(doc("<session session_id='s'><start-time>soon</start-time></session>"))


# ---------------------------------------------------------------------------- errors

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>&lol3;</datamode></recording>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE recording [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<recording><participant participant_id="&xxe;"/></recording>"""

ERRORS = [
    (b"", "metadata is empty"),
    (b"  \r\n", "metadata is empty"),
    (
        b"<recording><participant></recording>",
        "metadata is not well-formed XML: mismatched tag: line 1, column 26",
    ),
    (b"<recording", "metadata is not well-formed XML: unclosed token: line 1, column 0"),
    (BILLION_LAUGHS, "metadata has a DTD, which is not allowed"),
    (XXE, "metadata has a DTD, which is not allowed"),
    (
        b'<?xml version="1.0" encoding="klingon"?><recording/>',
        "metadata cannot be read as XML: unknown encoding: klingon",
    ),
    (b"<metadata/>", "metadata root element is 'metadata', not 'recording'"),
    (
        b"<recording xmlns='urn:example'/>",
        "metadata namespace 'urn:example' is not the recording one",
    ),
    (doc("<datamode>full</datamode>"), "metadata datamode 'full' is not complete or partial"),
    (
        doc("<participant><nameID aor='sip:a@b'/></participant>"),
        "metadata participant has no participant_id attribute",
    ),
    (doc("<stream session_id='s'/>"), "metadata stream has no stream_id attribute"),
    (doc("<session id=' '/>"), "metadata session has no session_id attribute"),
    (doc("<group/>"), "metadata group has no group_id attribute"),
    (
        doc("<participantstreamassoc/>"),
        "metadata participantstreamassoc has no participant_id attribute",
    ),
    (
        doc("<participantsessionassoc session_id='s'/>"),
        "metadata participantsessionassoc has no participant_id attribute",
    ),
    (doc("<sessionrecordingassoc/>"), "metadata sessionrecordingassoc has no session_id attribute"),
]


@pytest.mark.parametrize(("xml", "message"), ERRORS)
def test_errors(xml: bytes, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(xml)
    assert str(caught.value) == message
    assert caught.value.status == 400


def test_oversized_document() -> None:
    padding = b"<!--" + b"x" * MAX_METADATA_SIZE + b"-->"
    xml = doc() + padding
    with pytest.raises(MetadataError) as caught:
        parse_metadata(xml)
    assert str(caught.value) == (
        f"metadata is {len(xml)} bytes, over the {MAX_METADATA_SIZE} byte limit"
    )


def test_deeply_nested_extension_is_refused() -> None:
    nested = "<x>" * 60 + "</x>" * 60
    with pytest.raises(MetadataError, match=r"^metadata extension is nested over 48 levels deep$"):
        parse_metadata(doc(f"<extensiondata>{nested}</extensiondata>"))


# ---------------------------------------------------------------------------- partial updates

BASE = doc(
    "<datamode>complete</datamode>",
    "<session session_id='s'><start-time>2025-01-01T10:00:00Z</start-time></session>",
    "<participant participant_id='a'><nameID aor='sip:a@x'><name>A</name></nameID></participant>",
    "<participant participant_id='b'><nameID aor='sip:b@x'/></participant>",
    "<stream stream_id='sa' session_id='s'><label>1</label></stream>",
    "<stream stream_id='sb' session_id='s'><label>2</label></stream>",
    "<participantsessionassoc participant_id='a' session_id='s'>"
    "<associate-time>2025-01-01T10:00:00Z</associate-time></participantsessionassoc>",
    "<participantsessionassoc participant_id='b' session_id='s'>"
    "<associate-time>2025-01-01T10:00:00Z</associate-time></participantsessionassoc>",
    "<participantstreamassoc participant_id='a'><send>sa</send><recv>sb</recv>"
    "</participantstreamassoc>",
    "<participantstreamassoc participant_id='b'><send>sb</send><recv>sa</recv>"
    "</participantstreamassoc>",
)


def test_partial_update_transfer_b_leaves_c_joins() -> None:
    old = parse_metadata(BASE)
    update = parse_metadata(
        doc(
            "<datamode>partial</datamode>",
            "<participant participant_id='c'><nameID aor='sip:c@x'><name>C</name></nameID>"
            "</participant>",
            "<stream stream_id='sc' session_id='s'><label>3</label></stream>",
            "<participantsessionassoc participant_id='b' session_id='s'>"
            "<disassociate-time>2025-01-01T10:05:00Z</disassociate-time></participantsessionassoc>",
            "<participantsessionassoc participant_id='c' session_id='s'>"
            "<associate-time>2025-01-01T10:05:01Z</associate-time></participantsessionassoc>",
            "<participantstreamassoc participant_id='c'><send>sc</send><recv>sa</recv>"
            "</participantstreamassoc>",
            "<participantstreamassoc participant_id='a'><send>sa</send><recv>sc</recv>"
            "</participantstreamassoc>",
        )
    )
    assert update.datamode == "partial"
    merged = merge_metadata(old, update)
    assert merged.datamode == "complete"
    assert set(merged.participants) == {"a", "b", "c"}
    assert merged.participants["a"].name == "A"  # untouched elements survive
    assert not merged.is_active("b")
    assert merged.is_active("a") and merged.is_active("c")
    leaving = merged.participant_session_assocs[("b", "s")]
    assert leaving.associate_time == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)  # kept
    assert leaving.disassociate_time == datetime(2025, 1, 1, 10, 5, tzinfo=UTC)  # added
    assert merged.participant_stream_assocs["a"].recv == ("sc",)  # replaced, not added
    assert merged.senders("sc") == ("c",)
    assert merged.stream_by_label("3") == MediaStream("sc", "s", "3")
    assert merged.sessions["s"].start_time == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert old.participant_stream_assocs["a"].recv == ("sb",)  # inputs are not mutated


def test_partial_update_changes_a_name_and_stops_session() -> None:
    old = parse_metadata(BASE)
    update = parse_metadata(
        doc(
            "<datamode>partial</datamode>",
            "<participant participant_id='a'><nameID aor='sip:a@x'><name>Alice</name></nameID>"
            "</participant>",
            "<session session_id='s'><stop-time>2025-01-01T10:09:00Z</stop-time></session>",
        )
    )
    merged = merge_metadata(old, update)
    assert merged.participants["a"].name == "Alice"
    assert merged.sessions["s"].start_time == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert merged.sessions["s"].stop_time == datetime(2025, 1, 1, 10, 9, tzinfo=UTC)


def test_complete_update_replaces_everything() -> None:
    old = parse_metadata(BASE)
    fresh = parse_metadata(doc("<participant participant_id='z'/>"))
    assert merge_metadata(old, fresh) is fresh


# ---------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_metadata_error(data: bytes) -> None:
    with contextlib.suppress(MetadataError):
        parse_metadata(data)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_metadata_error(text: str) -> None:
    with contextlib.suppress(MetadataError):
        parse_metadata("<recording>" + text + "</recording>")


_ELEMENTS = st.sampled_from(
    [
        "group",
        "session",
        "participant",
        "stream",
        "participantstreamassoc",
        "participantsessionassoc",
        "sessionrecordingassoc",
        "datamode",
        "send",
        "recv",
        "label",
        "nameID",
        "name",
        "associate-time",
        "disassociate-time",
        "start-time",
        "extensiondata",
        "sipSessionID",
        "group-ref",
        "aor",
        "mode",
    ]
)
_ATTRS = st.sampled_from(
    [
        "",
        " id='a'",
        " participant_id='p'",
        " stream_id='s'",
        " session_id='x'",
        " session='x'",
        " group_id='g'",
        " streamid='s'",
        " aor='sip:a@b'",
        " participant='p'",
    ]
)
_TEXT = st.sampled_from(
    [
        "",
        "a",
        "p",
        "s",
        "complete",
        "partial",
        "2025-01-01T00:00:00Z",
        "2025-99-01T00:00:00Z",
        "&amp;",
        "x",
    ]
)


@st.composite
def _xml_element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(_ELEMENTS)
    children = (
        ""
        if depth > 2
        else "".join(
            draw(st.lists(_xml_element(depth + 1), max_size=3))  # type: ignore[call-arg]
        )
    )
    return f"<{tag}{draw(_ATTRS)}>{draw(_TEXT)}{children}</{tag}>"


@settings(max_examples=400, deadline=None)
@given(st.lists(_xml_element(), max_size=6), st.sampled_from([NS, "", "urn:other"]))
def test_random_documents_raise_only_metadata_error(children: list[str], ns: str) -> None:
    xml = (
        f"<recording xmlns='{ns}'>{''.join(children)}</recording>"
        if ns
        else (f"<recording>{''.join(children)}</recording>")
    )
    try:
        meta = parse_metadata(xml)
    except MetadataError:
        return
    merged = merge_metadata(meta, meta)
    for stream_id in merged.streams:
        merged.senders(stream_id)
    for extension in merged.extensions:
        extension.to_xml()
