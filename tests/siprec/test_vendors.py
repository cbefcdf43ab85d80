"""Vendor call identifiers and hints, from headers and metadata extensiondata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sipscribe.siprec.metadata import RecordingMetadata, parse_metadata
from sipscribe.siprec.multipart import parse_recording_body
from sipscribe.siprec.vendors import (
    DEFAULT_ID_PRIORITY,
    VendorInfo,
    decode_avaya_ucid,
    decode_ucid_bytes,
    external_id,
    extract_vendor_info,
    parse_session_id,
)


def vendor_of(invite: Callable[[str], Any], name: str, extra: tuple[str, ...] = ()) -> VendorInfo:
    message = invite(name)
    body = parse_recording_body(message.body, message.content_type)
    meta = parse_metadata(body.metadata) if body.metadata is not None else None
    return extract_vendor_info(message.headers, meta, extra_headers=extra)


# ---------------------------------------------------------------------------- Avaya UCID


@pytest.mark.parametrize(
    ("uui", "ucid"),
    [
        # AudioCodes' documented example: node 25, sequence 16, time 955721139
        ("00FA080019001038F725B3;encoding=hex", "00025000160955721139"),
        # protocol discriminator 04, UCID, then a C8 element carrying the same UCID as ASCII;
        # the Cisco-GUCID sent alongside it in the field was 00057063891633546180
        (
            "04FA08003918F5615DEFC4C8143030303537303633383931363333353436313830;encoding=hex",
            "00057063891633546180",
        ),
        ("FA080019001038F725B3", "00025000160955721139"),  # AudioCodes' metadata copy
        ("00c8023132fa080002d3df63111234", "00002542391662063156"),  # after another element
        ('"00FA080019001038F725B3";encoding=hex;purpose=isdn-uui', "00025000160955721139"),
        ("00FA080019001038F725B3;Encoding=HEX", "00025000160955721139"),
    ],
)
def test_decode_avaya_ucid(uui: str, ucid: str) -> None:
    assert decode_avaya_ucid(uui) == ucid


@pytest.mark.parametrize(
    "uui",
    [
        "hello",
        "00FA08001900",  # element cut short
        "00FA0",  # odd number of digits
        "00FA080019001038F725B3;encoding=ascii",
        "00C8023132",  # no UCID element
        "00FA040019001038F725B3",  # FA of the wrong length
        "",
    ],
)
def test_decode_avaya_ucid_refuses(uui: str) -> None:
    assert decode_avaya_ucid(uui) is None


def test_decode_ucid_bytes() -> None:
    assert decode_ucid_bytes(bytes.fromhex("0002D3DF63111234")) == "00002542391662063156"
    with pytest.raises(ValueError, match=r"^a UCID is 8 bytes, not 3$"):
        decode_ucid_bytes(b"abc")


# ---------------------------------------------------------------------------- Session-ID


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2",
            ("ab30317f1a784dc48ff824d0d3715d86", "47755a9de7794ba387653f2099600ef2"),
        ),
        (
            "AB30317F1A784DC48FF824D0D3715D86 ; remote=00000000000000000000000000000000",
            ("ab30317f1a784dc48ff824d0d3715d86", None),
        ),
        ("00000000000000000000000000000000", (None, None)),
        ("1-26773@127.0.0.1", ("1-26773@127.0.0.1", None)),  # OpenSIPS: a Call-ID, case kept
        ("ab30317f1a784dc48ff824d0d3715d86;other=1", ("ab30317f1a784dc48ff824d0d3715d86", None)),
    ],
)
def test_parse_session_id(value: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_session_id(value) == expected


# ---------------------------------------------------------------------------- fixtures


def test_opensips(invite: Callable[[str], Any]) -> None:
    info = vendor_of(invite, "opensips-3.6-rtpengine-invite.txt")
    assert info.vendor == "opensips"
    assert info.identifiers == {
        "call_id": "B2B.31.89156.1795305817.2109781981",
        "siprec_session_id": "0DZPr5MzQ4O8gUnUGWk6/g==",
        "cs_session_id": "1-26773@127.0.0.1",
    }
    assert info.hints == {"user_agent": "OpenSIPS (3.6.8 (x86_64/linux))"}
    assert info.calling_party == {}
    assert external_id(info) == "1-26773@127.0.0.1"


def test_cisco_cube(invite: Callable[[str], Any]) -> None:
    info = vendor_of(invite, "cisco-cube-invite.txt")
    assert info.vendor == "cisco"
    assert info.identifiers == {
        "call_id": "5E7A3F21-C55711F0-8D2CA1B4-9F3E6D01@192.0.2.10",
        "session_id": "ab30317f1a784dc48ff824d0d3715d86",  # remote is the null UUID: absent
        "cisco_guid": "1585021729-3310293488-2368496052-2671668481",
        "siprec_session_id": "Xvo/IcVXEfCNLKG0nz5tAQ==",
        "cs_session_id": "ab30317f1a784dc48ff824d0d3715d86",
    }
    assert external_id(info) == "1585021729-3310293488-2368496052-2671668481"


def test_oracle_sbc(invite: Callable[[str], Any]) -> None:
    info = vendor_of(invite, "oracle-sbc-invite.txt", extra=("X-Customer-Ref",))
    assert info.vendor == "oracle"  # no User-Agent: known by its extensiondata
    assert info.identifiers == {
        "call_id": "9f2c07a1d43b6e8a5c1f0e27b9d4a3c6@198.51.100.20",
        "siprec_session_id": "jWBTU+dDQeZL6U3Gdk6Cwg==",
        "oracle_ucid": "00024328271770065005",  # 00FA08 0018 803B 69810C6D decoded
        "avaya_ucid": "00024328271770065005",
        "x-customer-ref": "ACC-20931",  # from <apkt:header label="X-Customer-Ref">
    }
    assert info.caller_orig is True
    assert info.calling_party == {
        "jXXFR+0mQ1RPK5QGlWUprQ==": True,
        "wpjlMwVqTUZSI2tmcXkZFg==": False,
    }
    assert external_id(info) == "00024328271770065005"


def test_avaya_sbce(invite: Callable[[str], Any]) -> None:
    info = vendor_of(invite, "avaya-sbce-invite.txt")
    assert info.vendor == "avaya"
    assert info.identifiers["avaya_ucid"] == "00002542391662063156"
    assert info.identifiers["cs_session_id"] == "a84b4c76e66710aca8b6d1c1f6d6c9e2"
    assert "oracle_ucid" not in info.identifiers
    assert external_id(info) == "00002542391662063156"


def test_freeswitch(invite: Callable[[str], Any]) -> None:
    info = vendor_of(invite, "freeswitch-mixed-invite.txt")
    assert info.vendor == "freeswitch"
    assert info.identifiers["cs_session_id"] == "c3f1a2b4d5e6f70819a0b1c2d3e4f506"


def test_bare_sdp_with_genesys_and_extra_headers(invite: Callable[[str], Any]) -> None:
    info = vendor_of(invite, "bare-sdp-invite.txt", extra=("X-Customer-Ref", "X-Missing"))
    assert info.vendor == "genesys"
    assert info.identifiers == {
        "call_id": "rec-77120-1763650000@192.0.2.90",
        "genesys_call_uuid": "0P1CBUHJ5H1V3D8QKR6E1FM5UK000A1C",
        "genesys_conn_id": "007202a8c8d3e0f1",
        "x-customer-ref": "ACC-77120",
    }
    assert external_id(info) == "0P1CBUHJ5H1V3D8QKR6E1FM5UK000A1C"
    assert external_id(info, ["x-customer-ref"]) == "ACC-77120"
    assert external_id(info, ["X-Customer-Ref", "genesys_call_uuid"]) == "ACC-77120"


# ---------------------------------------------------------------------------- headers


def test_headers_case_compact_form_and_first_value() -> None:
    info = extract_vendor_info(
        [
            ("i", "compact-call-id"),
            ("CISCO-GUID", "1-2-3-4"),
            ("cisco-gucid", "00057063891633546180"),
            ("X-Genesys-GVP-Session-ID", "A1;1"),
            ("x-genesys-calluuid", "first"),
            ("X-Genesys-CallUUID", "second"),
            ("X-Genesys-", "no name"),
            ("Server", "Cisco-SIPGateway/IOS-17"),
        ]
    )
    assert info.identifiers == {
        "call_id": "compact-call-id",
        "cisco_guid": "1-2-3-4",
        "cisco_gucid": "00057063891633546180",
        "genesys_gvp_session_id": "A1;1",
        "genesys_call_uuid": "first",
    }
    assert info.vendor == "cisco"
    assert info.hints == {"user_agent": "Cisco-SIPGateway/IOS-17"}


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("X-Oracle-UCID", "UCID-1-23259", "UCID-1-23259"),
        ("X-OCSBC-UCID", "00FA080019001038F725B3;encoding=hex", "00025000160955721139"),
        ("P-OCSBC-UCID", "0019001038F725B3", "00025000160955721139"),
        ("X-Oracle-UCID", "41424344;encoding=hex", "ABCD"),  # hex that spells text
        ("X-Oracle-UCID", "00ff00ff00", "00FF00FF00"),  # opaque hex, kept (normalised case)
    ],
)
def test_oracle_ucid_headers(header: str, value: str, expected: str) -> None:
    info = extract_vendor_info({header: value})
    assert info.identifiers["oracle_ucid"] == expected
    assert info.vendor == "oracle"


def test_oracle_ucid_header_wins_over_metadata() -> None:
    meta = parse_metadata(
        "<recording xmlns='urn:ietf:params:xml:ns:recording'><session id='s'>"
        "<extensiondata xmlns:apkt='http://acmepacket.com/siprec/extensiondata'>"
        "<apkt:ucid>00FA080019001038F725B3;encoding=hex</apkt:ucid></extensiondata>"
        "</session></recording>"
    )
    info = extract_vendor_info({"X-Oracle-UCID": "from-header"}, meta)
    assert info.identifiers["oracle_ucid"] == "from-header"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00002542391662063156", "00002542391662063156"),
        ("0002D3DF63111234", "00002542391662063156"),
        ("00FA080002D3DF63111234;encoding=hex", "00002542391662063156"),
        ("not-a-ucid", "not-a-ucid"),
    ],
)
def test_x_avaya_ucid(value: str, expected: str) -> None:
    info = extract_vendor_info({"X-Avaya-UCID": value})
    assert info.identifiers["avaya_ucid"] == expected
    assert info.vendor == "avaya"


def test_user_to_user_without_ucid_is_ignored() -> None:
    info = extract_vendor_info({"User-to-User": "04C8023132;encoding=hex"})
    assert "avaya_ucid" not in info.identifiers
    assert info.vendor is None


def test_audiocodes_extensions() -> None:
    meta = parse_metadata(
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>"
        "<session session_id='s'><extensiondata xmlns:ac='http://audiocodes.com/siprec'>"
        "<ac:AvayaUCID xmlns='urn:ietf:params:xml:ns:Avaya'> FA080019001038F725B3</ac:AvayaUCID>"
        "<ac:GenesysUUID xmlns='urn:ietf:params:xml:ns:Genesys'>4BOKLLA3VH66JF112M1CC9VHKS1\n"
        "4F0KP</ac:GenesysUUID></extensiondata></session></recording>"
    )
    info = extract_vendor_info({"User-Agent": "Mediant SW/v.7.40A.500.001"}, meta)
    assert info.vendor == "audiocodes"
    assert info.identifiers["avaya_ucid"] == "00025000160955721139"
    assert info.identifiers["genesys_call_uuid"] == "4BOKLLA3VH66JF112M1CC9VHKS14F0KP"


def test_calling_party_values_and_nonsense() -> None:
    meta = parse_metadata(
        "<recording xmlns='urn:ietf:params:xml:ns:recording'>"
        "<participant id='a'><extensiondata xmlns:apkt='http://acmepacket.com/siprec/extensiondata'>"
        "<apkt:callingParty> TRUE </apkt:callingParty></extensiondata></participant>"
        "<participant id='b'><extensiondata xmlns:apkt='http://acmepacket.com/siprec/extensiondata'>"
        "<apkt:callingParty>maybe</apkt:callingParty></extensiondata></participant>"
        "<participant id='c'><extensiondata xmlns:x='urn:other'>"
        "<x:callingParty>true</x:callingParty></extensiondata></participant>"
        "</recording>"
    )
    info = extract_vendor_info({}, meta)
    assert info.calling_party == {"a": True}


def test_empty_input() -> None:
    info = extract_vendor_info({}, RecordingMetadata())
    assert info == VendorInfo()
    assert external_id(info) is None


# ---------------------------------------------------------------------------- external id


def test_external_id_priority_and_fallbacks() -> None:
    ids = {"call_id": "c", "session_id": "s", "siprec_session_id": "r", "cisco_guid": "g"}
    info = VendorInfo(identifiers=ids)
    assert external_id(info) == "g"
    assert external_id(info, []) == "c"
    assert external_id(info, ["session_id"]) == "s"
    assert (
        external_id(VendorInfo(identifiers={"session_id": "s", "siprec_session_id": "r"}), [])
        == "s"
    )
    assert external_id(VendorInfo(identifiers={"siprec_session_id": "r"}), []) == "r"
    assert external_id(VendorInfo(identifiers={"avaya_ucid": ""}), ["avaya_ucid"]) is None
    assert DEFAULT_ID_PRIORITY[0] == "oracle_ucid"
