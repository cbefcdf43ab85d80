"""Vendor dialects of call identity, normalised into one `VendorInfo`.

Contact-centre systems correlate a recording with their own records through an identifier
that each vendor carries its own way. This module is the only place that knows those ways:

* Oracle / Acme Packet SBC: ``<apkt:ucid>`` in the session's ``extensiondata`` (hex, often
  ``;encoding=hex``), ``<apkt:callingParty>true|false</apkt:callingParty>`` per participant,
  ``<apkt:callerOrig>`` per session, ``<apkt:header label="X-...">`` copies of SIP headers; the
  headers ``X-Oracle-UCID``, ``X-OCSBC-UCID`` and ``P-OCSBC-UCID``.
* Cisco CUBE: ``Session-ID`` (RFC 7989: ``<uuid>;remote=<uuid>``), ``Cisco-Guid`` and
  ``Cisco-GUCID``.
* Avaya: the UCID (Universal Call ID) inside ``User-to-User`` (hex UUI: a protocol
  discriminator byte, then information elements; element ``0xFA`` of length 8 is the UCID) or in
  ``X-Avaya-UCID`` as 20 decimal digits. The 8 bytes are a 2-byte node id, a 2-byte sequence
  number and a 4-byte Unix timestamp, printed as 5 + 5 + 10 zero-padded digits:
  ``00FA08 0019 0010 38F725B3`` is UCID ``00025000160955721139``. AudioCodes SBCs copy it into
  metadata as ``<ac:AvayaUCID>FA08...</ac:AvayaUCID>``.
* Genesys: ``X-Genesys-*`` headers (``X-Genesys-CallUUID``...), and AudioCodes'
  ``<ac:GenesysUUID>`` extension.
* Any header the operator names (``extra_headers``), captured verbatim.

`external_id()` then picks the call's external id by a configurable priority of identifier names.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sipscribe.siprec.metadata import RecordingMetadata, XmlNode

__all__ = [
    "DEFAULT_ID_PRIORITY",
    "VendorInfo",
    "decode_avaya_ucid",
    "decode_ucid_bytes",
    "external_id",
    "extract_vendor_info",
    "parse_session_id",
]

DEFAULT_ID_PRIORITY: tuple[str, ...] = (
    "oracle_ucid",
    "avaya_ucid",
    "genesys_call_uuid",
    "cisco_guid",
    "cs_session_id",
    "session_id",
    "call_id",
)
"""Which identifier becomes the external id when the operator configures nothing."""

_FALLBACK_IDS = ("call_id", "session_id", "siprec_session_id")
_COMPACT_HEADERS = {"i": "call-id"}
_ORACLE_UCID_HEADERS = ("x-oracle-ucid", "x-ocsbc-ucid", "p-ocsbc-ucid")
_UUI_HEADERS = ("user-to-user", "x-user-to-user")
_AVAYA_UCID_HEADERS = ("x-avaya-ucid", "x-ucid")
_NULL_SESSION_ID = "0" * 32
_HEX = re.compile(r"[0-9A-Fa-f]+")
_UUID = re.compile(r"[0-9A-Fa-f]{32}")
_USER_AGENTS = (
    ("acme packet", "oracle"),
    ("oracle", "oracle"),
    ("ocsbc", "oracle"),
    ("cisco", "cisco"),
    ("avaya", "avaya"),
    ("audiocodes", "audiocodes"),
    ("mediant", "audiocodes"),
    ("genesys", "genesys"),
    ("opensips", "opensips"),
    ("freeswitch", "freeswitch"),
    ("asterisk", "asterisk"),
    ("kamailio", "kamailio"),
    ("ribbon", "ribbon"),
    ("sonus", "ribbon"),
)
_GENESYS_NAMES = {"calluuid": "call_uuid", "connid": "conn_id"}


@dataclass(frozen=True)
class VendorInfo:
    """Everything vendor-specific about one recording, in vendor-neutral names.

    `identifiers` maps names such as ``call_id``, ``session_id``, ``session_id_remote``,
    ``cs_session_id``, ``siprec_session_id``, ``oracle_ucid``, ``avaya_ucid``, ``cisco_guid``,
    ``cisco_gucid``, ``genesys_call_uuid`` (and other ``genesys_*``) and lower-cased extra header
    names to their values. `calling_party` maps metadata participant ids to the SBC's
    "is the calling party" flag. `hints` holds the rest as text (``user_agent``...).
    """

    vendor: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)
    calling_party: dict[str, bool] = field(default_factory=dict)
    caller_orig: bool | None = None
    hints: dict[str, str] = field(default_factory=dict)


def _normalise_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> dict[str, str]:
    """Lower-cased names, compact forms expanded; the first value of a repeated header wins."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, value in pairs:
        key = name.strip().lower()
        key = _COMPACT_HEADERS.get(key, key)
        if value is not None and str(value).strip():
            result.setdefault(key, str(value).strip())
    return result


def parse_session_id(value: str) -> tuple[str | None, str | None]:
    """RFC 7989 ``Session-ID: <local-uuid>;remote=<remote-uuid>`` as (local, remote).

    The all-zero null UUID means "not known yet" and reads as None.
    """
    local, *params = (part.strip() for part in value.split(";"))
    remote = None
    for param in params:
        name, _, param_value = param.partition("=")
        if name.strip().lower() == "remote":
            remote = param_value.strip().strip('"') or None
    # RFC 7989 UUIDs compare case-insensitively; anything else (RFC 7329 forms, or a Call-ID
    # as OpenSIPS puts in sipSessionID) is kept exactly as sent.
    local = _uuid_case(local) or None
    remote = _uuid_case(remote) if remote else None
    return (
        None if local == _NULL_SESSION_ID else local,
        None if remote == _NULL_SESSION_ID else remote,
    )


def _uuid_case(value: str) -> str:
    return value.lower() if _UUID.fullmatch(value) else value


def decode_ucid_bytes(raw: bytes) -> str:
    """Eight UCID bytes as Avaya's 20 digits: node (5), sequence (5), timestamp (10)."""
    if len(raw) != 8:
        raise ValueError(f"a UCID is 8 bytes, not {len(raw)}")
    node = int.from_bytes(raw[0:2], "big")
    sequence = int.from_bytes(raw[2:4], "big")
    timestamp = int.from_bytes(raw[4:8], "big")
    return f"{node:05d}{sequence:05d}{timestamp:010d}"


def _hex_payload(value: str) -> bytes | None:
    """The bytes of a hex UUI-style value (``00FA08...;encoding=hex``), or None if not hex."""
    data, *params = (p.strip() for p in value.strip().split(";"))
    data = data.strip('"')  # RFC 7433 allows the UUI data as a quoted-string
    for param in params:
        name, _, encoding = param.partition("=")
        if name.strip().lower() == "encoding" and encoding.strip().lower() != "hex":
            return None
    if not data or len(data) % 2 or not _HEX.fullmatch(data):
        return None
    return binascii.unhexlify(data)


def decode_avaya_ucid(value: str) -> str | None:
    """The UCID in a hex ``User-to-User`` value (or AudioCodes' ``FA08...`` copy), or None.

    The UUI starts with a protocol discriminator byte (``00`` or ``04``) unless it starts with
    the UCID element itself; then come information elements, each tag, length, value. The
    UCID is element ``0xFA`` with length 8.
    """
    data = _hex_payload(value)
    if data is None:
        return None
    index = 0 if data[:1] == b"\xfa" else 1
    while index + 2 <= len(data):
        tag, length = data[index], data[index + 1]
        element = data[index + 2 : index + 2 + length]
        if len(element) < length:
            break
        if tag == 0xFA and length == 8:
            return decode_ucid_bytes(element)
        index += 2 + length
    return None


def _decode_oracle_ucid(value: str) -> tuple[str, bool]:
    """An ``apkt:ucid`` or ``X-Oracle-UCID`` value, decoded; True if it is an Avaya UCID.

    Oracle SBCs send the UUI form (``00FA08<8 bytes>;encoding=hex``) or the bare 8 bytes in hex
    (``00391770615DEF95``); both become the 20-digit UCID. Other hex that spells printable
    ASCII is decoded to text; anything else is kept as sent, without its parameters.
    """
    ucid = decode_avaya_ucid(value)
    if ucid is not None:
        return ucid, True
    data = _hex_payload(value)
    if data is None:
        return value.split(";", 1)[0].strip(), False
    if len(data) == 8:
        return decode_ucid_bytes(data), True
    if data and all(0x20 <= b < 0x7F for b in data):
        return data.decode("ascii"), False
    return value.split(";", 1)[0].strip().upper(), False


def _decimal_or_hex_ucid(value: str) -> str:
    text = value.strip()
    if re.fullmatch(r"[0-9]{20}", text):
        return text
    data = _hex_payload(text)
    if data is not None and len(data) == 8:
        return decode_ucid_bytes(data)
    return decode_avaya_ucid(text) or text


def _genesys_name(header: str) -> str:
    rest = header[len("x-genesys-") :].replace("-", "_")
    return "genesys_" + _GENESYS_NAMES.get(rest, rest)


def _is_oracle(node: XmlNode) -> bool:
    namespace = node.namespace.lower()
    return "acmepacket" in namespace or "oracle" in namespace


def _oracle_nodes(extensions: Iterable[XmlNode]) -> Iterable[XmlNode]:
    for extension in extensions:
        for node in extension.iter():
            if _is_oracle(node):
                yield node


def _boolean(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


def extract_vendor_info(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    metadata: RecordingMetadata | None = None,
    *,
    extra_headers: Sequence[str] = (),
) -> VendorInfo:
    """Collect identifiers and hints from the INVITE's headers and its metadata.

    `headers` is any mapping or sequence of (name, value) pairs; names are matched
    case-insensitively. Headers win over metadata for the same identifier: they are what the
    SBC was told by the switch, metadata is the SBC's copy.
    """
    sip = _normalise_headers(headers)
    ids: dict[str, str] = {}
    hints: dict[str, str] = {}
    evidence: list[str] = []

    if "call-id" in sip:
        ids["call_id"] = sip["call-id"]
    if "session-id" in sip:
        local, remote = parse_session_id(sip["session-id"])
        if local:
            ids["session_id"] = local
        if remote:
            ids["session_id_remote"] = remote
    for header, name in (("cisco-guid", "cisco_guid"), ("cisco-gucid", "cisco_gucid")):
        if header in sip:
            ids[name] = sip[header]
            evidence.append("cisco")
    for header in _ORACLE_UCID_HEADERS:
        if header in sip and "oracle_ucid" not in ids:
            ids["oracle_ucid"], _ = _decode_oracle_ucid(sip[header])
            evidence.append("oracle")
    for header in _UUI_HEADERS:
        if header in sip and "avaya_ucid" not in ids:
            ucid = decode_avaya_ucid(sip[header])
            if ucid is not None:
                ids["avaya_ucid"] = ucid
                evidence.append("avaya")
    for header in _AVAYA_UCID_HEADERS:
        if header in sip and "avaya_ucid" not in ids:
            ids["avaya_ucid"] = _decimal_or_hex_ucid(sip[header])
            evidence.append("avaya")
    for header, value in sip.items():
        if header.startswith("x-genesys-") and len(header) > len("x-genesys-"):
            ids.setdefault(_genesys_name(header), value)
            evidence.append("genesys")
    for header in extra_headers:
        key = header.strip().lower()
        if key in sip:
            ids.setdefault(key, sip[key])
    user_agent = sip.get("user-agent") or sip.get("server")
    if user_agent:
        hints["user_agent"] = user_agent

    calling_party: dict[str, bool] = {}
    caller_orig: bool | None = None
    if metadata is not None:
        caller_orig = _read_metadata(metadata, ids, calling_party, extra_headers, evidence)

    vendor = None
    if user_agent:
        lowered = user_agent.lower()
        vendor = next((name for key, name in _USER_AGENTS if key in lowered), None)
    if vendor is None and evidence:
        vendor = evidence[0]
    return VendorInfo(vendor, ids, calling_party, caller_orig, hints)


def _read_metadata(
    metadata: RecordingMetadata,
    ids: dict[str, str],
    calling_party: dict[str, bool],
    extra_headers: Sequence[str],
    evidence: list[str],
) -> bool | None:
    caller_orig: bool | None = None
    sessions = list(metadata.sessions.values())
    if sessions:
        ids.setdefault("siprec_session_id", sessions[0].id)
    for sip_session_id in metadata.sip_session_ids:
        local, _ = parse_session_id(sip_session_id)
        if local:
            ids.setdefault("cs_session_id", local)
            break

    every_extension = [
        *metadata.extensions,
        *(x for s in sessions for x in s.extensions),
        *(x for g in metadata.groups.values() for x in g.extensions),
        *(x for p in metadata.participants.values() for x in p.extensions),
        *(x for s in metadata.streams.values() for x in s.extensions),
    ]
    wanted = {h.strip().lower() for h in extra_headers}
    for node in _oracle_nodes(every_extension):
        if node.local == "ucid" and node.text and "oracle_ucid" not in ids:
            decoded, is_ucid = _decode_oracle_ucid(node.text)
            ids["oracle_ucid"] = decoded
            if is_ucid:
                ids.setdefault("avaya_ucid", decoded)
            evidence.append("oracle")
        elif node.local == "callerOrig" and caller_orig is None:
            caller_orig = _boolean(node.text)
            evidence.append("oracle")
        elif node.local == "header":
            label = (node.attribute("label") or "").strip().lower()
            value = node.find("value")
            if label in wanted and value is not None and value.text:
                ids.setdefault(label, value.text)
    for participant in metadata.participants.values():
        for node in _oracle_nodes(participant.extensions):
            if node.local == "callingParty":
                flag = _boolean(node.text)
                if flag is not None:
                    calling_party[participant.id] = flag
                    evidence.append("oracle")
    for extension in every_extension:  # AudioCodes copies of Avaya and Genesys ids
        for node in extension.iter():
            if node.local == "AvayaUCID" and node.text and "avaya_ucid" not in ids:
                ucid = decode_avaya_ucid(node.text)
                if ucid is not None:
                    ids["avaya_ucid"] = ucid
                    evidence.append("audiocodes")
            elif node.local == "GenesysUUID" and node.text:
                ids.setdefault("genesys_call_uuid", "".join(node.text.split()))
                evidence.append("audiocodes")
    return caller_orig


def external_id(info: VendorInfo, priority: Sequence[str] = DEFAULT_ID_PRIORITY) -> str | None:
    """The call's external id ("guid"): the first identifier present in `priority`.

    Names are identifier names of `VendorInfo.identifiers` (extra headers by their lower-cased
    header name). When none is present, falls back to the Call-ID, then the RFC 7989
    session id, then the SIPREC metadata session id; None if even those are missing.
    """
    for name in (*priority, *_FALLBACK_IDS):
        value = info.identifiers.get(name.strip().lower())
        if value:
            return value
    return None
