"""Agent/customer per stream: mapping by label, rule precedence, evidence, the hard cases."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sipscribe.sip.sdp import SessionDescription
from sipscribe.siprec.metadata import RecordingMetadata, parse_metadata
from sipscribe.siprec.multipart import parse_recording_body
from sipscribe.siprec.roles import RoleConfig, RoleDecision, StreamRole, assign_roles
from sipscribe.siprec.vendors import VendorInfo, extract_vendor_info


def decide(
    invite: Callable[[str], Any], name: str, config: RoleConfig | None = None
) -> RoleDecision:
    message = invite(name)
    body = parse_recording_body(message.body, message.content_type)
    offer = SessionDescription.parse(body.sdp)
    meta = parse_metadata(body.metadata) if body.metadata is not None else None
    vendor = extract_vendor_info(message.headers, meta)
    return assign_roles(offer, meta, vendor=vendor, config=config)


def roles(decision: RoleDecision) -> list[tuple[int, str | None, str | None, str | None]]:
    return [(s.mline_index, s.label, s.aor, s.role) for s in decision.streams]


ALICE = "MJGH3j0zRaCj9bDqCOx/+g=="


def offer(*media: str) -> SessionDescription:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0", *media]
    return SessionDescription.parse("\r\n".join(lines) + "\r\n")


TWO_PARTY = parse_metadata(
    "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>"
    "<participant participant_id='a'><nameID aor='sip:+15550001@carrier'/></participant>"
    "<participant participant_id='b'><nameID aor='sip:2001@pbx'/></participant>"
    "<participant participant_id='c'><nameID aor='sip:supervisor@pbx'/></participant>"
    "<stream stream_id='sa'><label>10</label></stream>"
    "<stream stream_id='sb'><label>20</label></stream>"
    "<participantstreamassoc participant_id='a'><send>sa</send></participantstreamassoc>"
    "<participantstreamassoc participant_id='b'><send>sb</send></participantstreamassoc>"
    "</recording>"
)
TWO_OFFER = offer("m=audio 4000 RTP/AVP 0", "a=label:20", "m=audio 4002 RTP/AVP 0", "a=label:10")


# ---------------------------------------------------------------------------- fixtures


def test_opensips_labels_in_reverse_order_fallback(invite: Callable[[str], Any]) -> None:
    decision = decide(invite, "opensips-3.6-rtpengine-invite.txt")
    assert decision.method == "mline_fallback"
    assert decision.streams == (
        StreamRole(
            "1",
            0,
            ALICE,
            "sip:alice@example.com",
            "Alice",
            "customer",
            "m-line order fallback (CUSTOMER_FIRST): audio m-line 1 of 2",
            0.3,
        ),
        StreamRole(
            "0",
            1,
            "F+xLRWfWTq+M5ZJvHBB5iQ==",
            "sip:bob@example.net",
            "Bob",
            "agent",
            "m-line order fallback (CUSTOMER_FIRST): audio m-line 2 of 2",
            0.3,
        ),
    )
    assert decision.confidence == 0.3
    assert decision.summary == (
        "mline_fallback: m-line 0 (label 1) sip:alice@example.com: customer, "
        "m-line 1 (label 0) sip:bob@example.net: agent"
    )


def test_opensips_explicit_media_line_order(invite: Callable[[str], Any]) -> None:
    decision = decide(
        invite, "opensips-3.6-rtpengine-invite.txt", RoleConfig(media_line_order="AGENT_FIRST")
    )
    assert decision.method == "media_line_order"
    assert roles(decision) == [
        (0, "1", "sip:alice@example.com", "agent"),
        (1, "0", "sip:bob@example.net", "customer"),
    ]
    assert decision.streams[0].evidence == (
        "configured mediaLineOrder (AGENT_FIRST): audio m-line 1 of 2"
    )
    assert decision.confidence == 0.95


def test_opensips_agent_pattern_decides_both(invite: Callable[[str], Any]) -> None:
    decision = decide(
        invite,
        "opensips-3.6-rtpengine-invite.txt",
        RoleConfig(agent_aor_patterns=(r"@example\.net$",)),
    )
    assert decision.method == "aor_pattern"
    alice, bob = decision.streams
    assert (bob.role, bob.confidence) == ("agent", 0.8)
    assert bob.evidence == "AOR sip:bob@example.net matches agent pattern '@example\\\\.net$'"
    assert (alice.role, alice.confidence) == ("customer", 0.7)
    assert alice.evidence == f"other party of sip:bob@example.net ({bob.evidence})"


def test_cisco_agent_extension_pattern(invite: Callable[[str], Any]) -> None:
    decision = decide(
        invite, "cisco-cube-invite.txt", RoleConfig(agent_aor_patterns=(r"^sip:4\d{3}@",))
    )
    assert roles(decision) == [
        (0, "1", "sip:+14155550123@192.0.2.10", "customer"),
        (1, "2", "sip:4017@cucm.example.com", "agent"),
    ]


def test_oracle_calling_party_inbound(invite: Callable[[str], Any]) -> None:
    decision = decide(invite, "oracle-sbc-invite.txt")
    assert decision.method == "vendor_hint"
    assert roles(decision) == [
        (0, "553654187", "sip:+15135550142@carrier.example.net", "customer"),
        (1, "553654188", "sip:8005550100@cc.example.com", "agent"),
    ]
    assert decision.streams[0].evidence == (
        "extensiondata callingParty=true for sip:+15135550142@carrier.example.net; "
        "the calling party is the customer"
    )
    assert decision.streams[0].confidence == 0.9


def test_oracle_calling_party_outbound(invite: Callable[[str], Any]) -> None:
    decision = decide(invite, "oracle-sbc-invite.txt", RoleConfig(calling_party_role="agent"))
    assert [s.role for s in decision.streams] == ["agent", "customer"]


def test_precedence_order_over_vendor_over_pattern(invite: Callable[[str], Any]) -> None:
    patterns = RoleConfig(agent_aor_patterns=(r"^sip:\+1513",))  # would say the caller is agent
    assert [s.role for s in decide(invite, "oracle-sbc-invite.txt", patterns).streams] == [
        "customer",
        "agent",
    ]  # the vendor hint wins
    explicit = RoleConfig(media_line_order="AGENT_FIRST", agent_aor_patterns=(r"^sip:\+1513",))
    decision = decide(invite, "oracle-sbc-invite.txt", explicit)
    assert decision.method == "media_line_order"
    assert [s.role for s in decision.streams] == ["agent", "customer"]


def test_avaya_customer_pattern_on_second_name_id(invite: Callable[[str], Any]) -> None:
    decision = decide(
        invite, "avaya-sbce-invite.txt", RoleConfig(customer_aor_patterns=(r"^tel:\+1",))
    )
    assert roles(decision) == [
        (0, "1", "sip:+13125550199@sbce.example.com", "customer"),
        (1, "2", "sip:52001@avaya.example.com", "agent"),
    ]
    assert (
        decision.streams[0].evidence
        == "AOR tel:+13125550199 matches customer pattern '^tel:\\\\+1'"
    )


def test_freeswitch_mixed_stream_has_no_role(invite: Callable[[str], Any]) -> None:
    decision = decide(
        invite, "freeswitch-mixed-invite.txt", RoleConfig(agent_aor_patterns=(r"^sip:1\d{3}@",))
    )
    (stream,) = decision.streams
    assert stream == StreamRole(
        "mixed-1",
        0,
        None,
        None,
        None,
        None,
        "mixed stream: label mixed-1 is sent by 2 participants; no single role",
        0.0,
    )
    assert decision.method == "none"
    assert decision.confidence == 0.0
    assert decision.unassigned_participants == ()


def test_bare_sdp_without_metadata(invite: Callable[[str], Any]) -> None:
    decision = decide(invite, "bare-sdp-invite.txt")
    assert decision.method == "mline_fallback"
    assert roles(decision) == [(0, "caller", None, "customer"), (1, "callee", None, "agent")]
    assert decision.streams[0].evidence == (
        "m-line order fallback (CUSTOMER_FIRST): audio m-line 1 of 2"
    )  # the disabled video m-line is not a recorded stream


# ---------------------------------------------------------------------------- edge cases


def test_participant_without_stream_and_label_mapping() -> None:
    decision = assign_roles(TWO_OFFER, TWO_PARTY, config=RoleConfig(agent_aor_patterns=(r"@pbx$",)))
    assert roles(decision) == [
        (0, "20", "sip:2001@pbx", "agent"),
        (1, "10", "sip:+15550001@carrier", "customer"),
    ]
    assert decision.unassigned_participants == ("c",)
    assert decision.for_label("10") == decision.streams[1]
    assert decision.for_mline(0) == decision.streams[0]
    assert decision.for_label("nope") is None


def test_both_patterns_match_is_a_conflict_not_a_guess() -> None:
    decision = assign_roles(
        TWO_OFFER,
        TWO_PARTY,
        config=RoleConfig(agent_aor_patterns=(r"@pbx$",), customer_aor_patterns=(r"^sip:2",)),
    )
    assert decision.method == "mline_fallback"
    assert decision.streams[0].evidence == (
        "m-line order fallback (CUSTOMER_FIRST): audio m-line 1 of 2; "
        "sip:2001@pbx matches both agent and customer patterns"
    )


def test_single_stream_without_metadata_is_treated_as_mixed() -> None:
    decision = assign_roles(offer("m=audio 4000 RTP/AVP 0", "a=label:1"))
    (stream,) = decision.streams
    assert stream.role is None
    assert stream.evidence == "single audio m-line (no metadata); treated as mixed"
    assert decision.method == "none"


def test_single_stream_with_one_known_sender_can_take_a_role() -> None:
    meta = parse_metadata(
        "<recording><participant participant_id='a'><nameID aor='sip:2001@pbx'/></participant>"
        "<stream stream_id='s'><label>1</label></stream>"
        "<participantstreamassoc participant_id='a'><send>s</send></participantstreamassoc>"
        "</recording>"
    )
    decision = assign_roles(
        offer("m=audio 4000 RTP/AVP 0", "a=label:1"),
        meta,
        config=RoleConfig(agent_aor_patterns=(r"@pbx$",)),
    )
    assert [s.role for s in decision.streams] == ["agent"]


def test_draft_mixed_mode_stream() -> None:
    meta = parse_metadata(
        "<recording><stream id='s'><label>1</label><mode>mixed</mode></stream></recording>"
    )
    decision = assign_roles(
        offer("m=audio 4000 RTP/AVP 0", "a=label:1", "m=audio 4002 RTP/AVP 0", "a=label:2"), meta
    )
    assert decision.streams[0].role is None
    assert decision.streams[0].evidence == (
        "mixed stream: label 1 is a mixed stream; no single role"
    )
    # The other stream is the only candidate left; the fallback still labels it, weakly.
    assert (decision.streams[1].role, decision.streams[1].confidence) == ("customer", 0.3)


def test_sender_inferred_from_recv_in_two_party_call() -> None:
    meta = parse_metadata(
        "<recording>"
        "<participant participant_id='a'><nameID aor='sip:a@x'/></participant>"
        "<participant participant_id='b'><nameID aor='sip:b@x'/></participant>"
        "<stream stream_id='s1'><label>1</label></stream>"
        "<participantstreamassoc participant_id='b'><recv>s1</recv></participantstreamassoc>"
        "</recording>"
    )
    decision = assign_roles(
        offer("m=audio 4000 RTP/AVP 0", "a=label:1", "m=audio 4002 RTP/AVP 0", "a=label:9"), meta
    )
    first, second = decision.streams
    assert (first.participant_id, first.aor) == ("a", "sip:a@x")
    assert second.participant_id is None


def test_vendor_hint_for_one_stream_of_three_leaves_the_rest_unknown() -> None:
    three = offer(
        "m=audio 4000 RTP/AVP 0",
        "a=label:10",
        "m=audio 4002 RTP/AVP 0",
        "a=label:20",
        "m=audio 4004 RTP/AVP 0",
        "a=label:30",
    )
    decision = assign_roles(three, TWO_PARTY, vendor=VendorInfo(calling_party={"a": True}))
    assert [s.role for s in decision.streams] == ["customer", None, None]
    assert (
        decision.streams[1].evidence
        == "no evidence for sip:2001@pbx (vendor_hint decided the others)"
    )
    assert decision.streams[2].evidence == (
        "no evidence for m-line 2 (vendor_hint decided the others)"
    )


def test_fallback_covers_two_m_lines_only() -> None:
    three = offer(
        "m=audio 4000 RTP/AVP 0",
        "m=audio 4002 RTP/AVP 0",
        "m=audio 4004 RTP/AVP 0",
        "m=audio 0 RTP/AVP 0",
    )
    decision = assign_roles(three, RecordingMetadata())
    assert [s.role for s in decision.streams] == ["customer", "agent", None]
    assert decision.streams[2].evidence == (
        "m-line order fallback (CUSTOMER_FIRST) only covers two audio m-lines"
    )
    assert decision.streams[0].evidence.startswith("m-line order fallback")
    assert [s.mline_index for s in decision.streams] == [0, 1, 2]  # the port 0 line is skipped


def test_media_line_order_needs_two_streams() -> None:
    decision = assign_roles(
        offer("m=audio 4000 RTP/AVP 0", "a=label:1"),
        parse_metadata(
            "<recording><participant participant_id='a'/><stream stream_id='s'><label>1</label>"
            "</stream><participantstreamassoc participant_id='a'><send>s</send>"
            "</participantstreamassoc></recording>"
        ),
        config=RoleConfig(media_line_order="CUSTOMER_FIRST"),
    )
    assert decision.method == "mline_fallback"


def test_no_audio_at_all() -> None:
    decision = assign_roles(offer("m=video 4000 RTP/AVP 96", "a=rtpmap:96 H264/90000"))
    assert decision.streams == ()
    assert decision.summary == "none: no recorded audio stream"


def test_decision_to_dict_is_json() -> None:
    decision = assign_roles(TWO_OFFER, TWO_PARTY)
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["method"] == "mline_fallback"
    assert data["confidence"] == 0.3
    assert data["unassigned_participants"] == ["c"]
    assert data["streams"][0] == {
        "label": "20",
        "mline_index": 0,
        "participant_id": "b",
        "aor": "sip:2001@pbx",
        "name": None,
        "role": "customer",
        "evidence": "m-line order fallback (CUSTOMER_FIRST): audio m-line 1 of 2",
        "confidence": 0.3,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"agent_aor_patterns": ("(",)},
            "agent AOR pattern '(' is not a valid regex: missing ), unterminated subpattern "
            "at position 0",
        ),
        (
            {"media_line_order": "LEFT_FIRST"},
            "media_line_order 'LEFT_FIRST' is not CUSTOMER_FIRST or AGENT_FIRST",
        ),
        ({"fallback_order": "x"}, "fallback_order 'x' is not CUSTOMER_FIRST or AGENT_FIRST"),
        ({"calling_party_role": "boss"}, "calling_party_role 'boss' is not agent or customer"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        RoleConfig(**kwargs)
    assert str(caught.value) == message
